"""Faults: database unreachable at start or lost mid-run, SIGTERM during a burst, a crash between
storing a report and confirming it. Each must lose nothing, write nothing half, and send nothing twice."""

import pytest

pytest.importorskip("handlers.report_parser", reason="the report parser has not landed yet")


import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from bot.delivery import respond
from bot.messages import ChatRef, Incoming, Reply, UserRef
from reminders.outbox import enqueue
from storage.models import Outbox, Report
from tests.conftest import make_deps, talk

ROOT = Path(__file__).resolve().parent.parent
GROUP = "新营子镇换届工作群"


def _env(**extra):
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def test_database_unreachable_at_start(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", "--retries", "2"],
        env=_env(HUANJIE_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere"),
        capture_output=True, text=True, cwd=tmp_path, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("重试") == 2
    assert "数据库连接失败" in proc.stderr.splitlines()[-1] and "127.0.0.1:1" in proc.stderr


@pytest.fixture
def pg_demo(pg_database, clock):
    from bot.demo import load_demo
    from tests.conftest import _fresh_pg

    _fresh_pg(pg_database)
    deps = make_deps(pg_database, clock)
    load_demo(deps)
    yield deps
    deps.db.dispose()


def _set_connections(url: str, allowed: bool) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allowed else "false"}'))
        if not allowed:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"),
                         {"d": name})
    admin.dispose()


async def test_database_lost_mid_run(pg_demo):
    deps = pg_demo
    await talk(deps, as_="张三", say="/whoami")  # identity linked while the database is up
    _set_connections(deps.settings.database_url, False)
    try:
        msg = Incoming(chat=ChatRef("console", GROUP, True), sender=UserRef("张三"), text="前进村 选民登记已完成", message_id="o-1")
        replies = await deps.router.dispatch(msg, deps)
        assert [deps.renderer.render(r) for r in replies] == ["系统暂时无法保存，请稍后重新发送这条消息。"]
    finally:
        _set_connections(deps.settings.database_url, True)
    replies = await deps.router.dispatch(msg, deps)  # the cadre resends
    assert deps.renderer.render(replies[0]).startswith("已记录 前进村")
    with deps.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Report)) == 1


async def test_scheduler_job_survives_an_outage(pg_demo):
    from reminders.jobs import run_job
    from reminders.scheduler import _RUNNING, fire
    from tests.helpers import bind_all

    bind_all(pg_demo)
    pg_demo.extras["platforms"] = {"console"}
    _RUNNING["deps"] = pg_demo
    _set_connections(pg_demo.settings.database_url, False)
    try:
        with pytest.raises(OperationalError):
            fire("daily-nudge")  # APScheduler logs it; the next run goes on
    finally:
        _set_connections(pg_demo.settings.database_url, True)
        _RUNNING.pop("deps", None)
    pg_demo.clock.set(datetime(2026, 11, 23, 16, 30, tzinfo=pg_demo.settings.tz))
    assert run_job(pg_demo, "daily-nudge") > 0


async def test_crash_between_storing_and_confirming(deps):
    """The platform redelivers the message after a crash: stored once, confirmed once."""
    await talk(deps, as_="张三", say="/whoami")
    msg = Incoming(chat=ChatRef("console", GROUP, True), sender=UserRef("张三"), text="前进村 两推一选已完成", message_id="c-1")
    replies = await deps.router.dispatch(msg, deps)  # stored ... and the process dies before sending
    assert await respond(deps, msg, replies) == 1
    again = await deps.router.dispatch(msg, deps)  # redelivery after restart
    assert await respond(deps, msg, again) == 0  # the confirmation is already queued: not doubled
    with deps.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Report)) == 1
        rows = list(uow.session.scalars(select(Outbox)))
        assert len(rows) == 1 and rows[0].payload["template"] == "report_recorded"


def test_sigterm_during_a_burst_loses_nothing(tmp_path, clock):
    url = f"sqlite:///{tmp_path / 'burst.db'}"
    deps = make_deps(url, clock)
    now = datetime.now(deps.settings.tz)
    total = 1200
    with deps.uow() as uow:
        for i in range(total):
            enqueue(uow, f"burst:{i}", "console", f"g{i % 7}", Reply("remind_done", {"count": i}), now, now)
        uow.commit()
    env = _env(HUANJIE_DATABASE_URL=url, HUANJIE_SCHEDULER="false")

    def start(name):
        out = open(tmp_path / name, "w", encoding="utf-8")  # a file, not a pipe: a full pipe would stall the sender
        return subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--headless"], env=env, cwd=tmp_path,
                                stdout=out, stderr=subprocess.DEVNULL, text=True)

    def sent_count():
        with deps.uow() as uow:
            return uow.outbox.count("sent")

    proc = start("run1.txt")
    deadline = time.time() + 30
    while sent_count() == 0 and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    out = (tmp_path / "run1.txt").read_text(encoding="utf-8")
    assert proc.returncode == 0
    first = sent_count()
    assert 0 < first < total, "the burst should have been interrupted"
    with deps.uow() as uow:
        assert uow.outbox.count("sending") == 0
        assert uow.outbox.count("pending") == total - first
    assert out.count("📣") == first  # what was printed is exactly what is marked sent
    proc = start("run2.txt")
    deadline = time.time() + 60
    while sent_count() < total and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    out2 = (tmp_path / "run2.txt").read_text(encoding="utf-8")
    assert sent_count() == total
    assert out.count("📣") + out2.count("📣") == total  # every message once, none twice
    deps.db.dispose()


async def test_a_message_that_cannot_be_rendered_is_marked_failed_not_stuck(deps):
    """A broken template (a bug, not a platform error) fails that one row and the sender carries on."""
    from bot.messages import Reply
    from reminders.outbox import Sender, enqueue
    from storage.models import Outbox

    sent: list[str] = []

    class Transport:
        platform, fmt, limit = "console", "text", 4096

        async def send(self, target, text, reply):
            sent.append(text)

    now = deps.clock.now()
    with deps.uow() as uow:
        enqueue(uow, "broken", "console", "t1", Reply("no_such_template_anywhere"), now, now)
        enqueue(uow, "missing", "console", "t1", Reply("qa_answer", {}), now, now)   # values missing
        enqueue(uow, "fine", "console", "t1", Reply("qa_usage"), now, now)
        uow.commit()
    sender = Sender(deps)
    sender.register(Transport())
    delivered = await sender.flush_once()
    with deps.uow() as uow:
        rows = {r.key: r for r in uow.session.query(Outbox)}
    assert delivered == 1, {k: (r.status, r.error, r.due_at) for k, r in rows.items()}
    assert rows["missing"].status == "failed" and "question" in rows["missing"].error
    assert "no_such_template_anywhere" in rows["broken"].error
    assert rows["fine"].status == "sent" and len(sent) == 1


async def test_a_broken_handbook_degrades_to_a_notice_and_is_read_once(deps, monkeypatch):
    """A deployment whose handbook cannot load: questions get the Chinese notice, the file is not re-read per question."""
    from bot.messages import ChatRef, Incoming, UserRef
    from content import handbook

    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise handbook.HandbookError("01_general.yaml: cannot read YAML")

    monkeypatch.setattr(handbook.Handbook, "load", broken)
    for i in range(2):
        msg = Incoming(chat=ChatRef("console", "private:x", False), sender=UserRef("x"), text="委托投票最多几个人",
                       message_id=f"q{i}")
        replies = await deps.router.dispatch(msg, deps)
        assert [r.template for r in replies] == ["qa_unavailable"]
        assert "问答手册暂时没有加载" in deps.renderer.render(replies[0])
    assert len(calls) == 1
