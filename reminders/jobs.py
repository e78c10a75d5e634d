"""The scheduled jobs: names, times and what each does when it fires.

`run_job(deps, name, now)` is the whole behaviour of a job and is what tests call with a FakeClock;
the APScheduler wiring in reminders/scheduler.py only decides when it is called.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time

from reminders import nudges
from reminders.calendar import WorkCalendar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSpec:
    id: str
    at: time
    weekday: int | None = None  # None = every day (the job itself skips non-workdays)
    description: str = ""


def job_specs(settings) -> list[JobSpec]:
    second, leader = (settings.escalation_times + [time(18, 0), time(20, 0)])[:2]
    wd = settings.weekly_nudge_weekday
    return [
        JobSpec("deadlines", time(9, 0), None, "阶段时限提醒(T-7/T-3/T-1)和超期通报"),
        JobSpec("petitions", time(9, 30), None, "信访问题日清提醒"),
        JobSpec("daily-nudge", settings.daily_nudge_time, None, "未报日报提醒(群+私聊)"),
        JobSpec("daily-second", second, None, "未报日报再次提醒"),
        JobSpec("daily-leader", leader, None, "仍未报日报的村报联系领导"),
        JobSpec("weekly-nudge", settings.weekly_nudge_time, wd, "未报周报提醒"),
        JobSpec("weekly-second", second, wd, "未报周报再次提醒"),
        JobSpec("weekly-leader", leader, wd, "仍未报周报的村报联系领导"),
        JobSpec("daily-digest", settings.daily_digest_time, None, "每日汇总发领导"),
        JobSpec("weekly-digest", settings.weekly_digest_time, settings.weekly_digest_weekday, "每周汇总发领导"),
    ]


def calendar_for(deps) -> WorkCalendar:
    cal = deps.extras.get("calendar")
    if cal is None:
        cal = deps.extras["calendar"] = WorkCalendar(deps.settings.work_weekends)
    return cal


def plan_job(deps, uow, name: str, now: datetime):
    """The messages job `name` would send at `now` (empty on non-workdays)."""
    day = now.date()
    cal = calendar_for(deps)
    if not cal.is_workday(day):
        return []
    if name == "daily-nudge":
        return nudges.plan_missing(deps, uow, name, day, "daily", 1, deadline=deps.settings.escalation_times[0].strftime("%H:%M") if deps.settings.escalation_times else None)
    if name == "daily-second":
        return nudges.plan_missing(deps, uow, name, day, "daily", 2)
    if name == "daily-leader":
        return nudges.plan_missing(deps, uow, name, day, "daily", 3)
    if name == "weekly-nudge":
        return nudges.plan_missing(deps, uow, name, day, "weekly", 1)
    if name == "weekly-second":
        return nudges.plan_missing(deps, uow, name, day, "weekly", 2)
    if name == "weekly-leader":
        return nudges.plan_missing(deps, uow, name, day, "weekly", 3)
    if name == "deadlines":
        return nudges.plan_deadlines(deps, uow, name, day, cal)
    if name == "petitions":
        return nudges.plan_petitions(deps, uow, name, day)
    if name in ("daily-digest", "weekly-digest"):
        from reminders.digest_jobs import plan_digests

        return plan_digests(deps, uow, name, now)
    raise KeyError(name)


def run_job(deps, name: str, now: datetime | None = None) -> int:
    """Plan and enqueue one job's messages; returns how many new outbox rows it added (0 on a repeat)."""
    now = now or deps.clock.now()
    with deps.uow() as uow:
        planned = plan_job(deps, uow, name, now)
        added = nudges.enqueue_planned(deps, uow, planned, now)
        uow.commit()
    log.info("job ran", extra={"job": name, "status": f"planned={len(planned)} added={added}"})
    return added
