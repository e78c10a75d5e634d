"""Reminder commands: /deadlines (upcoming deadlines for my region), /pause (a cadre on leave),
/remind now (admin: send the not-reported nudge immediately)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from bot.identity import home_region, resolve
from bot.messages import Incoming, Reply
from handlers.core import command_args

if TYPE_CHECKING:
    from bot.app import Deps


async def on_deadlines(msg: Incoming, deps: Deps) -> Reply:
    today = deps.today()
    with deps.uow() as uow:
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
        region = home_region(uow, actor)
        town = uow.regions.township_of(region) if region else None
        village = region if region is not None and region.kind in ("village", "community") else None
        deadlines = deps.plan.deadlines(town.name if town else None, village.name if village else None,
                                        village.election_day if village else None)
    rows = []
    for stage in deps.plan.stages:
        d = deadlines[stage.code]
        if d >= today:
            rows.append({"stage": stage.name, "deadline": d, "left": (d - today).days})
    return Reply("deadlines", {"region": (region.name if region else "全县"), "rows": rows[:6], "plan": deps.plan.name})


async def on_pause(msg: Incoming, deps: Deps) -> Reply:
    arg = command_args(msg).strip()
    if not arg:
        return Reply("pause_usage")
    try:
        until = date.fromisoformat(arg.replace("/", "-").replace(".", "-"))
    except ValueError:
        return Reply("pause_usage")
    today = deps.today()
    if until < today or (until - today).days > 90:
        return Reply("pause_range")
    with deps.uow() as uow:
        actor = resolve(uow, msg.chat.platform, msg.sender.id)
        person = uow.persons.get(actor.person_id)  # type: ignore[arg-type]
        person.paused_until = until
        uow.commit()
    return Reply("pause_ok", {"until": until})


async def on_remind(msg: Incoming, deps: Deps) -> Reply:
    from reminders.jobs import run_job

    if command_args(msg).strip() not in ("now", "现在", ""):
        return Reply("remind_usage")
    added = run_job(deps, "daily-nudge")
    sender = deps.extras.get("sender")
    if sender is not None:
        await sender.flush_once()
    return Reply("remind_done", {"count": added})
