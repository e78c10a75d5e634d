"""Storage on SQLite and PostgreSQL: migrations, region tree, report history, outbox and dedup keys."""

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.exc import StatementError

from storage.models import COUNTY, TOWNSHIP, VILLAGE, Report


def _tree(uow):
    county = uow.regions.ensure(None, "青山县", COUNTY)
    town = uow.regions.ensure(county.id, "新营子镇", TOWNSHIP)
    village = uow.regions.ensure(town.id, "前进村", VILLAGE)
    return county, town, village


def test_migrations_reach_head(db):
    assert db.is_current()
    assert db.has_tables()


def test_region_tree_and_scope(db):
    with db.uow() as uow:
        county, town, village = _tree(uow)
        again = uow.regions.ensure(town.id, "前进村", VILLAGE)
        assert again.id == village.id
        assert uow.regions.village_ids_under(county) == [village.id]
        assert uow.regions.contains(county, village)
        assert not uow.regions.contains(village, county)
        uow.commit()
    with db.uow() as uow:
        assert [r.name for r in uow.regions.find("新营子")] == ["新营子镇"]


def test_uncommitted_work_is_not_written(db):
    with db.uow() as uow:
        _tree(uow)
    with db.uow() as uow:
        assert uow.regions.roots() == []


def _report(village_id, text, now, day=date(2026, 11, 20)):
    return Report(village_id=village_id, report_date=day, kind="daily", stage="voter_registration", status="done",
                  metrics={"registered_voters": 1236}, problems=[], raw_text=text, created_at=now)


def test_correction_supersedes_and_keeps_history(db):
    now = datetime(2026, 11, 20, 10, tzinfo=UTC)
    with db.uow() as uow:
        _, _, village = _tree(uow)
        first = uow.reports.add(_report(village.id, "first", now))
        second = uow.reports.add(_report(village.id, "second", now + timedelta(minutes=5)))
        uow.commit()
        vid, first_id, second_id = village.id, first.id, second.id
    with db.uow() as uow:
        history = uow.reports.history(vid)
        assert [r.raw_text for r in history] == ["second", "first"]
        assert [r.raw_text for r in uow.reports.current_for(vid)] == ["second"]
        assert uow.reports.reported_village_ids([vid], date(2026, 11, 20)) == {vid}
        restored = uow.reports.withdraw(uow.session.get(Report, second_id), now)
        assert restored is not None and restored.id == first_id
        uow.commit()
    with db.uow() as uow:
        assert [r.raw_text for r in uow.reports.current_for(vid)] == ["first"]
        assert uow.reports.count() == 2  # nothing is ever deleted
        stored = uow.reports.history(vid)[0]
        assert stored.created_at.tzinfo is not None


def test_outbox_key_is_unique(db):
    now = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    with db.uow() as uow:
        assert uow.outbox.enqueue("nudge:1:2026-11-23", "console", "g", {"template": "x"}, now, now)
        assert not uow.outbox.enqueue("nudge:1:2026-11-23", "console", "g", {"template": "x"}, now, now)
        uow.commit()
    with db.uow() as uow:
        assert not uow.outbox.enqueue("nudge:1:2026-11-23", "console", "g", {"template": "x"}, now, now)
        assert uow.outbox.count() == 1
        row = uow.outbox.due(now)[0]
        assert uow.outbox.claim(row.id, now)
        assert not uow.outbox.claim(row.id, now)


def test_dedup_across_units_of_work(db):
    now = datetime(2026, 11, 23, tzinfo=UTC)
    with db.uow() as uow:
        assert uow.dedup.first_time("wecom", "msg-1", now)
        uow.commit()
    with db.uow() as uow:
        assert not uow.dedup.first_time("wecom", "msg-1", now)
        assert uow.dedup.first_time("wecom", "msg-2", now)


def test_naive_datetimes_are_refused(db):
    import pytest

    with db.uow() as uow:
        uow.audit.record("t", "x", None, datetime(2026, 1, 1))
        with pytest.raises(StatementError):
            uow.session.flush()
