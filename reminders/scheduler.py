"""APScheduler wiring: persistent SQLAlchemy job store in the project's database, deterministic job ids,
`replace_existing=True`, the configured time zone on every trigger, and one scheduler across processes.

On PostgreSQL several bot processes may run; exactly one holds a session-level advisory lock and runs
the scheduler, the others retry every few seconds and take over when the holder's connection dies.
On SQLite the bot is single-process. Either way the outbox keys make every reminder send once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import text

from reminders.jobs import job_specs, run_job

log = logging.getLogger(__name__)
ADVISORY_KEY = 0x6875616E6A6965  # "huanjie"
JOBS_TABLE = "apscheduler_jobs"

# APScheduler's persistent store keeps jobs as import paths plus arguments; the running Deps cannot be
# pickled, so the one scheduler of this process registers them here when it starts.
_RUNNING: dict[str, object] = {}


def fire(name: str) -> None:
    """Entry point stored in the job store: run job `name` with this process's Deps."""
    deps = _RUNNING.get("deps")
    if deps is None:
        log.warning("job fired without a running app", extra={"job": name})
        return
    run_job(deps, name)


def build_scheduler(deps) -> AsyncIOScheduler:
    tz = deps.settings.tz
    store = SQLAlchemyJobStore(engine=deps.db.engine, tablename=JOBS_TABLE)
    scheduler = AsyncIOScheduler(
        jobstores={"default": store},
        timezone=tz,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": deps.settings.grace_seconds},
    )
    for spec in job_specs(deps.settings):
        trigger = CronTrigger(
            hour=spec.at.hour, minute=spec.at.minute,
            day_of_week=spec.weekday if spec.weekday is not None else "*",
            timezone=tz,
        )
        scheduler.add_job(fire, trigger, args=[spec.id], id=spec.id, name=spec.description,
                          replace_existing=True, jobstore="default")

    def on_missed(event: JobExecutionEvent) -> None:
        record_skipped(deps, event.job_id, event.scheduled_run_time)

    scheduler.add_listener(on_missed, EVENT_JOB_MISSED)
    return scheduler


def record_skipped(deps, job_id: str, scheduled: datetime) -> None:
    """A reminder whose time passed beyond the grace period while the bot was down: recorded, not sent."""
    from storage.models import Outbox

    now = deps.clock.now()
    key = f"{job_id}:skipped:{scheduled.astimezone(deps.settings.tz).isoformat()}"
    with deps.uow() as uow:
        if uow.outbox.by_key(key) is None:
            uow.session.add(Outbox(key=key, platform="-", target="-", payload={"job": job_id}, status="skipped",
                                   due_at=scheduled, created_at=now, error="missed beyond grace period"))
            uow.commit()
    log.warning("reminder skipped: its time passed while the bot was down", extra={"job": job_id})


class SchedulerLeader:
    """Runs the scheduler in exactly one process: PostgreSQL advisory lock, or SQLite single-process."""

    def __init__(self, deps, retry_seconds: float = 10.0):
        self.deps = deps
        self.retry_seconds = retry_seconds
        self.scheduler: AsyncIOScheduler | None = None
        self._conn = None
        self.is_leader = False

    def _try_lock(self) -> bool:
        if self.deps.db.is_sqlite:
            return True
        if self._conn is None:
            self._conn = self.deps.db.engine.connect()
        got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar()
        self._conn.commit()
        return bool(got)

    def _lock_alive(self) -> bool:
        if self.deps.db.is_sqlite:
            return True
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return True
        except Exception:
            return False

    def _start(self) -> None:
        _RUNNING["deps"] = self.deps
        self.scheduler = build_scheduler(self.deps)
        self.scheduler.start()
        self.is_leader = True
        if self.deps.db.is_sqlite:
            log.info("scheduler started (SQLite: single process; run one bot process only)")
        else:
            log.info("scheduler started: this process holds the PostgreSQL advisory lock")

    def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.scheduler = None
        self.is_leader = False
        _RUNNING.pop("deps", None)
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    async def run(self) -> None:
        """Become leader when possible; stand by otherwise; give up leadership if the lock connection dies."""
        try:
            while True:
                try:
                    if not self.is_leader:
                        if self._try_lock():
                            self._start()
                        else:
                            log.info("scheduler standby: another process holds the lock")
                    elif not self._lock_alive():
                        log.warning("lost the scheduler lock connection; standing by")
                        self.stop()
                except Exception:
                    log.exception("scheduler leadership check failed; retrying")
                    if self._conn is not None and not self.is_leader:
                        try:
                            self._conn.close()
                        except Exception:
                            pass
                        self._conn = None
                await asyncio.sleep(self.retry_seconds)
        finally:
            self.stop()
