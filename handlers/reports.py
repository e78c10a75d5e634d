"""Report collection: cadres' free-text 日报/周报 in group chats → stored reports and one short confirmation.

The parser (handlers/report_parser.py) reads the text; this module decides whose report it is, which
village it is for, whether the sender may report for it, and stores it without ever losing history:
a correction supersedes, an edit updates, /undo withdraws — nothing is deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from bot.identity import Actor, actor_from_rows, resolve
from bot.messages import Choice, Incoming, Reply
from bot.router import split_command
from handlers.report_parser import ParseResult, metric_label, parse_report
from reminders.plan import STATUS_NAMES
from storage.models import ADMIN, CADRE, SECRETARY, Report

if TYPE_CHECKING:
    from bot.app import Deps

REPORTER_ROLES = (CADRE, SECRETARY, ADMIN)
QUESTION_PREFIX = re.compile(r"^\s*(问[:：]|请问|咨询[:：]?)")
KIND_NAMES = {"daily": "日报", "weekly": "周报"}


@dataclass
class Target:
    """Where a parsed report goes once its village is settled."""

    village_id: int
    village: str
    township: str | None


def _context(deps: Deps, msg: Incoming) -> tuple[Actor, str | None, set[int], bool]:
    """The actor, the township the chat (or the sender) works in, the villages they may report for, and whether
    reports from this very message are stored already (a redelivery)."""
    with deps.uow() as uow:
        rows, allowed, township, stored = uow.identities.reporter_context(msg.chat.platform, msg.sender.id,
                                                                         msg.chat.id, msg.message_id)
        actor = actor_from_rows(rows)
        if not msg.chat.is_group:
            township = None
        if actor.known:
            if township is None:
                towns = {uow.regions.township_of(v).name for v in (uow.regions.get(i) for i in allowed) if v}
                township = towns.pop() if len(towns) == 1 else None
    return actor, township, allowed, stored


def _village_name(deps: Deps, village_id: int) -> tuple[str, str | None]:
    with deps.uow() as uow:
        village = uow.regions.get(village_id)
        town = uow.regions.township_of(village) if village else None
        return (village.name if village else "?"), (town.name if town else None)


def _resolve_village(deps: Deps, r: ParseResult, township: str | None, allowed: set[int]) -> tuple[Target | None, list[Target]]:
    """(the village, or None and the candidates to ask about)."""
    roster = deps.roster()
    ids: dict[tuple[str, str], int] = roster.ids

    def target(name: str, town: str | None) -> Target | None:
        if town and (name, town) in ids:
            return Target(ids[(name, town)], name, town)
        matches = [(n, t) for (n, t) in ids if n == name]
        if township:
            local = [m for m in matches if m[1] == township]
            matches = local or matches
        if len(matches) == 1:
            return Target(ids[matches[0]], *matches[0])
        return None

    if r.village:
        found = target(r.village, r.township)
        if found:
            return found, []
        names = list(r.ambiguous or []) or [r.village]
        candidates: list[Target] = []
        for name in names:
            for (n, t), vid in ids.items():
                if n == name and (vid in allowed or not allowed):
                    candidates.append(Target(vid, n, t))
        if not candidates:
            for cand in roster.closest(r.village_written or r.village, limit=3):
                vid = ids.get((cand.name, cand.township))
                if vid is not None:
                    candidates.append(Target(vid, cand.name, cand.township))
        return None, candidates[:5]
    # no village named: a cadre with one village means that one
    mine = [Target(vid, *_village_name(deps, vid)) for vid in sorted(allowed)]
    if len(mine) == 1:
        return mine[0], []
    return None, mine[:10]


def _item(deps: Deps, rep: Report, village: str, replaced: bool = False) -> dict[str, Any]:
    return {
        "village": village,
        "date": rep.report_date,
        "kind": KIND_NAMES.get(rep.kind, rep.kind),
        "stage": deps.plan.name_of(rep.stage) if rep.stage else None,
        "status": STATUS_NAMES.get(rep.status or "", ""),
        "metrics": [metric_label(k, v) for k, v in (rep.metrics or {}).items()],
        "problems": list(rep.problems or []),
        "replaced": replaced,
    }


PETITION_RESOLVED = re.compile(r"信访.{0,12}(已化解|已解决|已办结|已处理完|已息访|清零)|(化解|办结|解决)了?.{0,6}信访")


def _petitions(r: ParseResult, text: str) -> int | None:
    """Open 信访件 as of this report: the count reported, 0 when reported resolved, None when not mentioned."""
    if PETITION_RESOLVED.search(text):
        return 0
    value = (r.metrics or {}).get("petitions")
    return int(value) if value is not None else None


def _new_report(r: ParseResult, target: Target, actor: Actor, msg: Incoming, now: datetime, day: date) -> Report:
    return Report(
        petitions=_petitions(r, msg.text),
        village_id=target.village_id,
        report_date=r.date or day,
        kind=r.kind or "daily",
        stage=r.stage,
        status=r.status,
        metrics=dict(r.metrics or {}),
        problems=list(r.problems or []),
        raw_text=msg.text[:4000],
        author_id=actor.person_id,
        platform=msg.chat.platform,
        chat_id=msg.chat.id,
        message_id=msg.message_id,
        created_at=now,
    )


def store_reports(deps: Deps, msg: Incoming, actor: Actor, items: list[tuple[ParseResult, Target]]) -> Reply:
    """Store parsed reports in one transaction and build the confirmation."""
    now = deps.clock.now()
    recorded = []
    with deps.uow() as uow:
        if msg.edited and msg.message_id:
            for old in uow.reports.by_message(msg.chat.platform, msg.chat.id, msg.message_id):
                uow.reports.withdraw(old, now)
        for r, target in items:
            rep = _new_report(r, target, actor, msg, now, deps.today())
            had = uow.reports.store(rep)
            recorded.append(_item(deps, rep, target.village, replaced=had and not msg.edited))
        uow.commit()
    return Reply("report_recorded", {"items": recorded, "edited": msg.edited})


def _already_stored(deps: Deps, msg: Incoming, maybe: bool = True) -> Reply | None:
    """A redelivered message (platform retry): confirm again from what is stored, store nothing."""
    if msg.edited or not msg.message_id or not maybe:
        return None
    with deps.uow() as uow:
        stored = uow.reports.by_message(msg.chat.platform, msg.chat.id, msg.message_id)
        if not stored:
            return None
        items = [_item(deps, rep, uow.regions.get(rep.village_id).name) for rep in stored]
    return Reply("report_recorded", {"items": items, "edited": False})


async def on_report_text(msg: Incoming, deps: Deps) -> Reply | None:
    """Free text that reads as a report. Anything else returns None (silence in groups)."""
    text = msg.text.strip()
    if msg.event or msg.callback or not text or split_command(text):
        return None
    if QUESTION_PREFIX.match(text):
        return None  # a question to the bot, not a report (an @-mention may carry a report: parse it)
    for name in deps.bot_names:
        text = text.replace(f"@{name}", " ")
    actor, township, allowed, stored = _context(deps, msg)
    if msg.chat.is_group and township is None:
        return None  # unbound group: the bot stays quiet until /bindgroup
    if not msg.chat.is_group and not actor.has(*REPORTER_ROLES):
        return None  # private chats of residents are questions
    result = parse_report(text.strip(), deps.today(), deps.roster(), township=township)
    if not result.is_report:
        return None
    if not actor.known:
        return Reply("report_unbound")
    if not actor.has(*REPORTER_ROLES):
        return Reply("report_not_reporter")
    again = _already_stored(deps, msg, stored)
    if again is not None:
        return again
    ready: list[tuple[ParseResult, Target]] = []
    refused: list[str] = []
    for r in result.reports or [result]:
        target, candidates = _resolve_village(deps, r, township, allowed)
        if target is None:
            if ready:
                continue  # ask about it separately after storing the clear ones
            return _ask_village(deps, msg, r, candidates)
        if target.village_id not in allowed and not actor.is_admin:
            refused.append(target.village)
            continue
        ready.append((r, target))
    if not ready:
        mine = [_village_name(deps, v)[0] for v in sorted(allowed)]
        return Reply("report_not_assigned", {"villages": refused, "mine": mine})
    reply = store_reports(deps, msg, actor, ready)
    if refused:
        reply.values["refused"] = refused
    return reply


def _ask_village(deps: Deps, msg: Incoming, r: ParseResult, candidates: list[Target]) -> Reply:
    if not candidates:
        return Reply("report_village_unknown", {"written": r.village_written or r.village})
    pending = {
        "text": msg.text[:4000],
        "message_id": msg.message_id,
        "report": r.to_json(),
    }
    with deps.uow() as uow:
        conv = uow.conversations.get(msg.chat.platform, msg.chat.id, msg.sender.id)
        state = dict(conv.state) if conv else {}
        state["pending_report"] = pending
        uow.conversations.set(msg.chat.platform, msg.chat.id, msg.sender.id, state, deps.clock.now())
        uow.commit()
    choices = [Choice(f"{c.village}({c.township})" if c.township else c.village, f"rv:{c.village_id}") for c in candidates]
    return Reply("report_which_village", {"written": r.village_written or r.village}, tuple(choices))


def _result_from_json(data: dict[str, Any]) -> SimpleNamespace:
    """The stored parse of a pending report, with just what `_new_report` reads."""
    return SimpleNamespace(
        date=date.fromisoformat(data["date"]) if data.get("date") else None,
        kind=data.get("kind"), stage=data.get("stage"), status=data.get("status"),
        metrics=data.get("metrics") or {}, problems=data.get("problems") or [],
    )


async def on_village_choice(msg: Incoming, deps: Deps) -> Reply:
    """Button / number answering “which village?” for a pending report."""
    try:
        village_id = int((msg.callback or "").split(":", 1)[1])
    except (IndexError, ValueError):
        return Reply("stale_button", notice="这个按钮已失效")
    with deps.uow() as uow:
        conv = uow.conversations.get(msg.chat.platform, msg.chat.id, msg.sender.id)
        pending = (conv.state or {}).get("pending_report") if conv else None
        if pending:
            state = dict(conv.state)
            state.pop("pending_report", None)
            uow.conversations.set(msg.chat.platform, msg.chat.id, msg.sender.id, state, deps.clock.now())
            uow.commit()
    if not pending:
        return Reply("stale_button", notice="这个选择已经处理过了")
    actor, _township, allowed, _stored = _context(deps, msg)
    name, town = _village_name(deps, village_id)
    if village_id not in allowed and not actor.is_admin:
        return Reply("report_not_assigned", {"villages": [name], "mine": [_village_name(deps, v)[0] for v in sorted(allowed)]})
    original = Incoming(chat=msg.chat, sender=msg.sender, text=pending["text"], message_id=pending.get("message_id"))
    result = _result_from_json(pending["report"])
    reply = store_reports(deps, original, actor, [(result, Target(village_id, name, town))])
    return Reply(reply.template, reply.values, notice=f"已选择 {name}")


async def on_undo(msg: Incoming, deps: Deps) -> Reply:
    now = deps.clock.now()
    with deps.uow() as uow:
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
        last = uow.reports.last_by_author(actor.person_id)  # type: ignore[arg-type]
        if not last:
            return Reply("undo_nothing")
        items = []
        for rep in last:
            restored = uow.reports.withdraw(rep, now)
            items.append({"village": uow.regions.get(rep.village_id).name, "date": rep.report_date,
                          "kind": KIND_NAMES.get(rep.kind, rep.kind), "restored": restored is not None})
        uow.commit()
    return Reply("undo_done", {"items": items})
