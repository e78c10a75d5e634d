"""Looking back: /progress shows a village's stage history, /mine a cadre's villages with today's status."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.identity import resolve, visible_region
from bot.messages import Choice, Incoming, Reply
from handlers.core import command_args
from handlers.report_parser import metric_label
from reminders.plan import STATUS_NAMES
from storage.models import VILLAGE_KINDS

if TYPE_CHECKING:
    from bot.app import Deps


def _find_village(deps: Deps, uow, actor, written: str):
    """Villages matching what the user wrote, limited to what the actor may see."""
    roster = deps.roster()
    found = [r for r in uow.regions.find(written) if r.kind in VILLAGE_KINDS]
    if not found:
        for cand in roster.match(written) or roster.closest(written, limit=3):
            vid = roster.ids.get((cand.name, cand.township))
            if vid is not None:
                found.append(uow.regions.get(vid))
    return [v for v in found if v is not None and visible_region(uow, actor, v)]


async def on_progress(msg: Incoming, deps: Deps) -> Reply:
    written = command_args(msg).strip()[:30]
    with deps.uow() as uow:
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
        if written:
            villages = _find_village(deps, uow, actor, written)
        else:
            villages = uow.persons.assigned_villages(actor.person_id) or [
                uow.regions.get(v) for v in uow.persons.reportable_village_ids(actor.person_id)
            ]
        if not villages:
            return Reply("progress_not_found", {"written": written})
        if len(villages) > 1:
            return Reply("progress_which", {}, tuple(Choice(v.name, f"pg:{v.id}") for v in villages[:10]))
        return _progress_reply(deps, uow, villages[0])


async def on_progress_choice(msg: Incoming, deps: Deps) -> Reply:
    try:
        village_id = int((msg.callback or "").split(":", 1)[1])
    except (IndexError, ValueError):
        return Reply("stale_button", notice="这个按钮已失效")
    with deps.uow() as uow:
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
        village = uow.regions.get(village_id)
        if village is None or not visible_region(uow, actor, village):
            return Reply("stale_button", notice="这个按钮已失效")
        return _progress_reply(deps, uow, village)


def _progress_reply(deps: Deps, uow, village) -> Reply:
    reports = uow.reports.current_for(village.id)
    town = uow.regions.township_of(village)
    deadlines = deps.plan.deadlines(town.name if town else None, village.name, village.election_day)
    done_on: dict[str, object] = {}
    latest = None
    for rep in reports:  # oldest first
        if rep.stage and rep.status == "done":
            # a stage reported done also completes every earlier stage
            for code in deps.plan.codes[: deps.plan.index(rep.stage) + 1]:
                done_on.setdefault(code, rep.report_date)
        latest = rep
    stages = []
    for stage in deps.plan.stages:
        status = "done" if stage.code in done_on else ""
        if latest and latest.stage == stage.code and latest.status != "done":
            status = latest.status or ""
        stages.append({"name": stage.name, "deadline": deadlines[stage.code], "done": done_on.get(stage.code),
                       "status": STATUS_NAMES.get(status, "")})
    last = None
    if latest:
        last = {"date": latest.report_date, "metrics": [metric_label(k, v) for k, v in (latest.metrics or {}).items()],
                "problems": latest.problems or []}
    return Reply("progress", {"village": village.name, "township": town.name if town else "", "stages": stages,
                              "last": last, "count": len(reports)})


async def on_mine(msg: Incoming, deps: Deps) -> Reply:
    today = deps.today()
    with deps.uow() as uow:
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
        villages = uow.persons.assigned_villages(actor.person_id) or [
            uow.regions.get(v) for v in sorted(uow.persons.reportable_village_ids(actor.person_id))
        ]
        if not villages:
            return Reply("mine_none")
        reported = uow.reports.reported_village_ids([v.id for v in villages], today)
        rows = []
        for v in villages:
            last = uow.reports.current_for(v.id)
            latest = last[-1] if last else None
            rows.append({"village": v.name, "reported": v.id in reported,
                         "stage": deps.plan.name_of(latest.stage) if latest and latest.stage else None,
                         "status": STATUS_NAMES.get(latest.status or "", "") if latest else ""})
    return Reply("mine", {"date": today, "rows": rows, "missing": sum(1 for r in rows if not r["reported"])})
