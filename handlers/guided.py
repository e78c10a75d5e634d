"""The structured path: /report asks village → stage → status → numbers → problems, one step at a time,
and ends in the same stored report as a free-text post. /cancel leaves it."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from bot.identity import resolve
from bot.messages import Choice, Incoming, Reply
from bot.router import split_command
from handlers.report_parser import parse_report
from handlers.reports import Target, store_reports
from reminders.plan import STATUS_NAMES

if TYPE_CHECKING:
    from bot.app import Deps

NONE_WORDS = re.compile(r"^\s*(无|没有|暂无|没|跳过|无问题|没有问题|0)\s*[。.!！]?\s*$")


def _state(deps: Deps, msg: Incoming) -> dict[str, Any]:
    with deps.uow() as uow:
        conv = uow.conversations.get(msg.chat.platform, msg.chat.id, msg.sender.id)
        return dict(conv.state) if conv else {}


def _save(deps: Deps, msg: Incoming, guided: dict[str, Any] | None) -> None:
    with deps.uow() as uow:
        conv = uow.conversations.get(msg.chat.platform, msg.chat.id, msg.sender.id)
        state = dict(conv.state) if conv else {}
        if guided is None:
            state.pop("guided", None)
        else:
            state["guided"] = guided
        if state:
            uow.conversations.set(msg.chat.platform, msg.chat.id, msg.sender.id, state, deps.clock.now())
        elif conv is not None:
            uow.conversations.clear(msg.chat.platform, msg.chat.id, msg.sender.id)
        uow.commit()


def _ask(deps: Deps, guided: dict[str, Any]) -> Reply:
    step = guided["step"]
    if step == "village":
        return Reply("guided_village", {}, tuple(Choice(name, f"gr:v:{vid}") for vid, name in guided["options"]))
    if step == "stage":
        return Reply("guided_stage", {"village": guided["village"]},
                     tuple(Choice(s.name, f"gr:s:{s.code}") for s in deps.plan.stages))
    if step == "status":
        return Reply("guided_status", {"stage": deps.plan.name_of(guided["stage"])},
                     tuple(Choice(name, f"gr:t:{code}") for code, name in STATUS_NAMES.items()))
    if step == "numbers":
        return Reply("guided_numbers")
    return Reply("guided_problems")


async def on_report_command(msg: Incoming, deps: Deps) -> Reply:
    with deps.uow() as uow:
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
        ids = sorted(uow.persons.reportable_village_ids(actor.person_id))  # type: ignore[arg-type]
        options = [(vid, uow.regions.get(vid).name) for vid in ids]
    if not options:
        return Reply("mine_none")
    guided: dict[str, Any] = {"step": "village", "options": options[:20]}
    if len(options) == 1:
        guided.update(step="stage", village_id=options[0][0], village=options[0][1])
    _save(deps, msg, guided)
    return _ask(deps, guided)


async def on_cancel(msg: Incoming, deps: Deps) -> Reply:
    had = "guided" in _state(deps, msg)
    _save(deps, msg, None)
    return Reply("guided_cancelled" if had else "guided_nothing")


async def on_guided_choice(msg: Incoming, deps: Deps) -> Reply:
    guided = _state(deps, msg).get("guided")
    parts = (msg.callback or "").split(":")
    if not guided or len(parts) != 3:
        return Reply("stale_button", notice="这个选择已经失效，请重新发送 /report")
    _, kind, value = parts
    if kind == "v" and guided["step"] == "village":
        names = dict((str(vid), name) for vid, name in guided["options"])
        if value not in names:
            return Reply("stale_button", notice="这个选择已经失效")
        guided.update(step="stage", village_id=int(value), village=names[value])
    elif kind == "s" and guided["step"] == "stage" and value in deps.plan.codes:
        guided.update(step="status", stage=value)
    elif kind == "t" and guided["step"] == "status" and value in STATUS_NAMES:
        guided.update(step="numbers", status=value)
    else:
        return Reply("stale_button", notice="这个选择已经失效")
    _save(deps, msg, guided)
    return _ask(deps, guided)


async def on_guided_text(msg: Incoming, deps: Deps) -> Reply | None:
    """Typed answers for the numbers and problems steps (other steps want a choice)."""
    if msg.callback or split_command(msg.text):
        return None
    guided = _state(deps, msg).get("guided")
    if not guided:
        return None
    text = msg.text.strip()
    if guided["step"] in ("village", "stage", "status"):
        return _ask(deps, guided)
    if guided["step"] == "numbers":
        metrics = {} if NONE_WORDS.match(text) else parse_report(f"{guided['village']} {text}", deps.today()).metrics
        if not metrics and not NONE_WORDS.match(text):
            return Reply("guided_numbers_again")
        guided.update(step="problems", metrics=metrics)
        _save(deps, msg, guided)
        return _ask(deps, guided)
    problems = [] if NONE_WORDS.match(text) else [p.strip() for p in re.split(r"[；;\n]", text) if p.strip()][:10]
    _save(deps, msg, None)
    with deps.uow() as uow:
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
        allowed = uow.persons.reportable_village_ids(actor.person_id)  # type: ignore[arg-type]
    if guided["village_id"] not in allowed and not actor.is_admin:
        return Reply("report_not_assigned", {"villages": [guided["village"]], "mine": []})
    result = SimpleNamespace(date=deps.today(), kind="daily", stage=guided["stage"], status=guided["status"],
                             metrics=guided.get("metrics") or {}, problems=[p[:200] for p in problems])
    summary = f"[/report] {guided['village']} {deps.plan.name_of(guided['stage'])}{STATUS_NAMES[guided['status']]}"
    original = Incoming(chat=msg.chat, sender=msg.sender, text=summary, message_id=msg.message_id)
    return store_reports(deps, original, actor, [(result, Target(guided["village_id"], guided["village"], None))])
