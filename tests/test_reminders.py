"""Reminders with a FakeClock: a simulated week of nudges and escalations, exactly once, no holidays,
no quiet hours, deadline and petition reminders, and the sender's retries and rate limits."""

from datetime import date, datetime, time, timedelta

import pytest

from bot.messages import Reply
from reminders.calendar import WorkCalendar
from reminders.jobs import job_specs, plan_job, run_job
from reminders.nudges import hold_quiet
from reminders.outbox import PermanentError, RateLimiter, RetryAfter, Sender, TransientError
from reminders.plan import DEFAULT_PLAN
from tests.helpers import add_report, at, bind_all, outbox_rows

WEEK = [date(2026, 11, 23) + timedelta(days=i) for i in range(7)]  # Monday .. Sunday


@pytest.fixture
def rdeps(deps):
    bind_all(deps)
    deps.extras["platforms"] = {"console"}
    return deps


def test_daily_nudge_names_missing_villages_and_cadres(rdeps):
    add_report(rdeps, "前进村", WEEK[0], township="新营子镇")
    add_report(rdeps, "红旗村", WEEK[0], township="新营子镇")
    added = run_job(rdeps, "daily-nudge", at(rdeps, 2026, 11, 23, 16, 30))
    rows = outbox_rows(rdeps, "daily-nudge")
    groups = [r for r in rows if not r.target.startswith("private:")]
    private = [r for r in rows if r.target.startswith("private:")]
    assert added == len(rows) == 3 + 14  # 3 township groups; 15 cadres minus 张三 (both villages reported)
    xyz = next(r for r in groups if r.target == "新营子镇换届工作群")
    rendered = rdeps.renderer.render(Reply(xyz.payload["template"], xyz.payload["values"]))
    assert "新营子镇还有8个村(社区)未报日报" in rendered
    assert "前进村" not in rendered and "新营子村(@李四)" in rendered
    assert {m["name"] for m in xyz.payload["mentions"]} == {"李四", "王五", "刘芳", "陈明"}
    assert "private:张三" not in {r.target for r in private}
    li = next(r for r in private if r.target == "private:李四")
    assert rdeps.renderer.render(Reply(li.payload["template"], li.payload["values"])).startswith("李四您好，新营子村、胜利村今天还没有报日报")


def test_rerun_and_restart_send_nothing_twice(rdeps):
    first = run_job(rdeps, "daily-nudge", at(rdeps, 2026, 11, 23, 16, 30))
    assert first > 0
    assert run_job(rdeps, "daily-nudge", at(rdeps, 2026, 11, 23, 16, 31)) == 0
    from tests.conftest import make_deps

    restarted = make_deps(rdeps.settings.database_url, rdeps.clock)  # a new process on the same database
    restarted.extras["platforms"] = {"console"}
    assert run_job(restarted, "daily-nudge", at(rdeps, 2026, 11, 23, 16, 30)) == 0
    assert len(outbox_rows(rdeps, "daily-nudge")) == first


def test_simulated_week(rdeps):
    """Mon–Sun: nudges and escalations on workdays only; reported villages drop out."""
    counts = {}
    for day in WEEK:
        if day.weekday() < 5:
            for v in ("前进村", "红旗村", "新营子村"):
                add_report(rdeps, v, day, township="新营子镇")
        for spec in job_specs(rdeps.settings):
            if spec.id.endswith("digest"):
                continue
            if spec.weekday is not None and spec.weekday != day.weekday():
                continue
            counts[(day, spec.id)] = run_job(rdeps, spec.id, at(rdeps, day.year, day.month, day.day, spec.at.hour, spec.at.minute))
    for day in WEEK[5:]:
        assert all(v == 0 for (d, _), v in counts.items() if d == day), "no reminders at the weekend"
    monday = {job: n for (d, job), n in counts.items() if d == WEEK[0]}
    assert monday["daily-nudge"] == 3 + 14  # 李四 still has 胜利村 missing
    assert monday["daily-second"] == 3 + 14
    assert monday["daily-leader"] == 3
    friday = {job: n for (d, job), n in counts.items() if d == WEEK[4]}
    assert friday["weekly-nudge"] == 3 + 15  # no weekly reports at all
    assert friday["weekly-leader"] == 3
    # each (job, target, day) exactly once
    keys = [r.key for r in outbox_rows(rdeps)]
    assert len(keys) == len(set(keys))


def test_no_nudges_on_a_statutory_holiday(rdeps):
    assert run_job(rdeps, "daily-nudge", at(rdeps, 2026, 10, 1, 16, 30)) == 0  # 国庆节
    assert run_job(rdeps, "daily-nudge", at(rdeps, 2026, 11, 28, 16, 30)) == 0  # Saturday


def test_campaign_weekends(rdeps):
    rdeps.settings.work_weekends = True
    rdeps.extras.pop("calendar", None)
    assert run_job(rdeps, "daily-nudge", at(rdeps, 2026, 11, 28, 16, 30)) > 0
    assert run_job(rdeps, "daily-nudge", at(rdeps, 2026, 10, 3, 16, 30)) == 0  # still a holiday


def test_quiet_hours_hold_until_morning(rdeps):
    tz = rdeps.settings.tz
    late = datetime(2026, 11, 23, 21, 30, tzinfo=tz)
    assert hold_quiet(late, time(21), time(8)) == datetime(2026, 11, 24, 8, 0, tzinfo=tz)
    assert hold_quiet(datetime(2026, 11, 24, 6, 0, tzinfo=tz), time(21), time(8)) == datetime(2026, 11, 24, 8, 0, tzinfo=tz)
    assert hold_quiet(datetime(2026, 11, 24, 16, 30, tzinfo=tz), time(21), time(8)).hour == 16
    run_job(rdeps, "daily-leader", late)
    assert all(r.due_at.astimezone(tz).hour == 8 for r in outbox_rows(rdeps, "daily-leader"))


def test_paused_cadre_gets_no_private_nudge(rdeps):
    with rdeps.uow() as uow:
        uow.persons.by_name("李四")[0].paused_until = date(2026, 11, 30)
        uow.commit()
    run_job(rdeps, "daily-nudge", at(rdeps, 2026, 11, 23, 16, 30))
    rows = outbox_rows(rdeps, "daily-nudge")
    assert "private:李四" not in {r.target for r in rows}
    group = next(r for r in rows if r.target == "新营子镇换届工作群")
    assert "李四" in str(group.payload["values"]["rows"])  # the group message still names the village


def test_deadline_reminders_t7_t3_t1_and_overdue(rdeps):
    # survey deadline 2026-11-30: T-7 is Monday 11-23
    with rdeps.uow() as uow:
        planned = plan_job(rdeps, uow, "deadlines", at(rdeps, 2026, 11, 23))
    assert len(planned) == 15  # every cadre: no village has finished 摸底调研
    zhang = next(p for p in planned if p.target == "private:张三")
    assert "前进村" in zhang.reason and "还剩7天" in zhang.reason
    add_report(rdeps, "前进村", date(2026, 11, 23), stage="survey", status="done", township="新营子镇")
    add_report(rdeps, "红旗村", date(2026, 11, 23), stage="party_nomination", status="in_progress", township="新营子镇")
    with rdeps.uow() as uow:
        planned = plan_job(rdeps, uow, "deadlines", at(rdeps, 2026, 11, 27))  # T-3
        assert "private:张三" not in {p.target for p in planned}  # both his villages are past 摸底
        assert len(planned) == 14
        assert plan_job(rdeps, uow, "deadlines", at(rdeps, 2026, 11, 25)) == []  # T-5: nothing
        overdue = plan_job(rdeps, uow, "deadlines", at(rdeps, 2026, 12, 1))  # T+1
    leaders = [p for p in overdue if p.key.startswith("deadlines-leader")]
    assert len(leaders) == 3
    assert any("已超期" in p.reason for p in overdue)


def test_reminder_due_on_a_weekend_is_sent_on_the_workday_before(rdeps, tmp_path):
    # a plan whose survey deadline is Monday 2026-12-07: T-1 is Sunday, so Friday 12-04 carries it
    body = DEFAULT_PLAN.read_text(encoding="utf-8").replace("deadline: 2026-11-30", "deadline: 2026-12-07")
    path = tmp_path / "plan.yaml"
    path.write_text(body, encoding="utf-8")
    rdeps.reload_plan(path)
    with rdeps.uow() as uow:
        friday = plan_job(rdeps, uow, "deadlines", at(rdeps, 2026, 12, 4))
        sunday = plan_job(rdeps, uow, "deadlines", at(rdeps, 2026, 12, 6))
    assert any("摸底调研" in str(p.reply.values) and "还剩3天" in p.reason for p in friday)
    assert sunday == []


def test_petitions_daily_until_resolved(rdeps):
    add_report(rdeps, "东风村", date(2026, 11, 23), petitions=2, township="新营子镇")
    with rdeps.uow() as uow:
        first = plan_job(rdeps, uow, "petitions", at(rdeps, 2026, 11, 24, 9, 30))
    targets = {p.target for p in first}
    assert targets == {"private:王五", "private:赵建国"}
    assert "东风村有2件信访未化解" in first[0].reason
    add_report(rdeps, "东风村", date(2026, 11, 24), petitions=0, township="新营子镇")
    with rdeps.uow() as uow:
        assert plan_job(rdeps, uow, "petitions", at(rdeps, 2026, 11, 25, 9, 30)) == []


class FakeTransport:
    platform = "console"
    fmt = "text"
    limit = 50

    def __init__(self, errors=()):
        self.errors = list(errors)
        self.sent = []

    async def send(self, target, text, reply):
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((target, text))


async def _enqueue(deps, key, text_values=None, target="g1"):
    from reminders.outbox import enqueue

    now = deps.clock.now()
    with deps.uow() as uow:
        enqueue(uow, key, "console", target, Reply("remind_done", {"count": 3}), now, now)
        uow.commit()


async def test_sender_retries_flood_control_and_network_errors(rdeps):
    transport = FakeTransport([RetryAfter(30), TransientError("502 Bad Gateway")])
    sender = Sender(rdeps, {"console": transport})
    await _enqueue(rdeps, "k1")
    assert await sender.flush_once() == 0
    assert await sender.flush_once() == 0  # waiting for retry_after
    rdeps.clock.advance(seconds=31)
    assert await sender.flush_once() == 0  # 502 → backoff
    rdeps.clock.advance(seconds=10)
    assert await sender.flush_once() == 1
    assert transport.sent == [("g1", "已发出3条未报提醒。")]
    row = outbox_rows(rdeps, "k1")[0]
    assert row.status == "sent" and row.attempts == 3
    assert await sender.flush_once() == 0  # never twice


async def test_sender_records_permanent_failure(rdeps):
    sender = Sender(rdeps, {"console": FakeTransport([PermanentError("chat not found")])})
    await _enqueue(rdeps, "k2")
    await sender.flush_once()
    row = outbox_rows(rdeps, "k2")[0]
    assert row.status == "failed" and "chat not found" in row.error


async def test_sender_respects_per_target_rate(rdeps):
    transport = FakeTransport()
    sender = Sender(rdeps, {"console": transport}, {"console": RateLimiter(per_second=30, per_target=2, window=60)})
    for i in range(4):
        await _enqueue(rdeps, f"r{i}")
    assert await sender.flush_once() == 2
    rdeps.clock.advance(seconds=61)
    assert await sender.flush_once() == 2
    assert len(transport.sent) == 4


async def test_long_messages_split_at_lines(rdeps):
    transport = FakeTransport()
    sender = Sender(rdeps, {"console": transport})
    now = rdeps.clock.now()
    from reminders.outbox import enqueue

    rows = [{"village": f"村{i:02d}", "cadres": ["张三"]} for i in range(12)]
    with rdeps.uow() as uow:
        enqueue(uow, "long", "console", "g", Reply("nudge_leader", {"township": "镇", "date": "2026-11-23", "kind": "日报",
                                                                    "rows": rows, "count": 12}), now, now)
        uow.commit()
    await sender.flush_once()
    assert len(transport.sent) > 1
    assert all(len(t) <= 50 for _, t in transport.sent)
    assert "\n".join(t for _, t in transport.sent).count("村") >= 12


def test_calendar_make_up_workday():
    cal = WorkCalendar()
    assert cal.is_workday(date(2026, 11, 23))
    assert not cal.is_workday(date(2026, 10, 1))
    assert cal.next_workday(date(2026, 11, 27)) == date(2026, 11, 30)
