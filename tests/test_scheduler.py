"""APScheduler wiring and the one-scheduler-across-processes rule (PostgreSQL advisory lock)."""

import asyncio
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from reminders.scheduler import ADVISORY_KEY, JOBS_TABLE, SchedulerLeader, build_scheduler, record_skipped
from tests.conftest import make_deps
from tests.helpers import outbox_rows

ROOT = Path(__file__).resolve().parent.parent


async def test_jobs_are_persistent_deterministic_and_zoned(deps):
    scheduler = build_scheduler(deps)
    scheduler.start(paused=True)
    jobs = {j.id: j for j in scheduler.get_jobs()}
    assert {"daily-nudge", "daily-second", "daily-leader", "weekly-nudge", "deadlines", "petitions",
            "daily-digest", "weekly-digest"} <= set(jobs)
    assert str(jobs["daily-nudge"].trigger.timezone) == "Asia/Shanghai"
    assert "hour='16'" in str(jobs["daily-nudge"].trigger) and "minute='30'" in str(jobs["daily-nudge"].trigger)
    assert "day_of_week='4'" in str(jobs["weekly-nudge"].trigger)
    scheduler.shutdown(wait=False)
    again = build_scheduler(deps)  # a restart replaces, never duplicates
    again.start(paused=True)
    assert len(again.get_jobs()) == len(jobs)
    again.shutdown(wait=False)
    with deps.db.engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {JOBS_TABLE}")).scalar() == len(jobs)


def test_missed_beyond_grace_is_recorded_as_skipped(deps):
    when = datetime(2026, 11, 23, 16, 30, tzinfo=deps.settings.tz)
    record_skipped(deps, "daily-nudge", when)
    record_skipped(deps, "daily-nudge", when)
    rows = outbox_rows(deps, "daily-nudge:skipped")
    assert len(rows) == 1 and rows[0].status == "skipped"


async def test_sqlite_runs_single_process_scheduler(deps):
    leader = SchedulerLeader(deps, retry_seconds=0.05)
    task = asyncio.create_task(leader.run())
    await asyncio.sleep(0.2)
    assert leader.is_leader and leader.scheduler.running
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not leader.is_leader


@pytest.fixture
def pg_deps(pg_database, clock):
    from tests.conftest import _fresh_pg

    _fresh_pg(pg_database)
    d = make_deps(pg_database, clock)
    yield d
    d.db.dispose()


async def test_only_one_leader_and_takeover_on_postgres(pg_deps, clock):
    other = make_deps(pg_deps.settings.database_url, clock)
    a, b = SchedulerLeader(pg_deps, retry_seconds=0.05), SchedulerLeader(other, retry_seconds=0.05)
    ta = asyncio.create_task(a.run())
    await asyncio.sleep(0.3)
    tb = asyncio.create_task(b.run())
    await asyncio.sleep(0.3)
    assert a.is_leader and not b.is_leader
    ta.cancel()  # the leader dies: its lock connection closes
    await asyncio.gather(ta, return_exceptions=True)
    for _ in range(60):
        if b.is_leader:
            break
        await asyncio.sleep(0.05)
    assert b.is_leader
    tb.cancel()
    await asyncio.gather(tb, return_exceptions=True)
    other.db.dispose()


def _lock_holder_pid(url: str) -> int | None:
    """OS pid of the bot process holding the scheduler's advisory lock (from its application_name)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        name = conn.execute(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype='advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = :k"),
            {"k": ADVISORY_KEY}).scalar()
    engine.dispose()
    return int(name.split("-")[1]) if name and name.startswith("huanjie-") else None


def test_two_processes_kill_the_leader_and_reminders_continue_once(pg_database):
    from tests.conftest import _fresh_pg

    _fresh_pg(pg_database)
    env = {**os.environ, "HUANJIE_DATABASE_URL": pg_database, "HUANJIE_LEADER_RETRY": "0.5", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "bot.cli", "roster", "import", str(ROOT / "content/roster/demo_roster.csv")],
                   env=env, check=True, capture_output=True)
    procs = [subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--headless"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        deadline = time.time() + 30
        holder = None
        while time.time() < deadline and holder is None:
            holder = _lock_holder_pid(pg_database)
            time.sleep(0.2)
        assert holder in {p.pid for p in procs}, "no bot process took the scheduler lock"
        leader = next(p for p in procs if p.pid == holder)
        standby = next(p for p in procs if p.pid != holder)
        leader.kill()  # the leader dies without cleaning up
        leader.wait()
        deadline = time.time() + 30
        new_holder = None
        while time.time() < deadline and new_holder != standby.pid:
            new_holder = _lock_holder_pid(pg_database)
            time.sleep(0.2)
        assert new_holder == standby.pid, "the standby did not take over within 30 s"
        # both processes running the same job at the same time would still enqueue each reminder once
        from bot.clock import FakeClock

        clock = FakeClock(datetime(2026, 11, 23, 16, 30), tz=__import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
        d1, d2 = make_deps(pg_database, clock), make_deps(pg_database, clock)
        from reminders.jobs import run_job
        from tests.helpers import bind_all

        bind_all(d1)
        for d in (d1, d2):
            d.extras["platforms"] = {"console"}
        first = run_job(d1, "daily-nudge")
        assert first > 0 and run_job(d2, "daily-nudge") == 0
        d1.db.dispose()
        d2.db.dispose()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
