"""Test helpers that write reports straight into storage (for reminder and digest tests)."""

from __future__ import annotations

from datetime import date, datetime

from storage.models import Outbox, Report


def village_id(deps, name: str, township: str | None = None) -> int:
    with deps.uow() as uow:
        found = [r for r in uow.regions.find(name) if r.kind in ("village", "community")]
        if township:
            found = [r for r in found if uow.regions.township_of(r).name == township]
        assert len(found) == 1, f"{name}: {len(found)} matches"
        return found[0].id


def add_report(deps, village: str, day: date, stage: str | None = "voter_registration", status: str = "done",
               kind: str = "daily", metrics: dict | None = None, problems: list | None = None,
               township: str | None = None, petitions: int | None = None, author: str | None = None) -> int:
    vid = village_id(deps, village, township)
    with deps.uow() as uow:
        author_id = uow.persons.by_name(author)[0].id if author else None
        rep = uow.reports.add(Report(
            village_id=vid, report_date=day, kind=kind, stage=stage, status=status, metrics=metrics or {},
            problems=problems or [], raw_text=f"{village} test", created_at=deps.clock.now(), petitions=petitions,
            author_id=author_id,
        ))
        uow.commit()
        return rep.id


def outbox_rows(deps, prefix: str = "") -> list[Outbox]:
    from sqlalchemy import select

    with deps.uow() as uow:
        rows = list(uow.session.scalars(select(Outbox).where(Outbox.key.like(f"{prefix}%")).order_by(Outbox.id)))
        uow.session.expunge_all()
        return rows


def at(deps, y: int, m: int, d: int, hh: int = 9, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=deps.settings.tz)


def bind_all(deps, platform: str = "console") -> None:
    """Link every roster person to a console identity named after them (as if each had used /as)."""
    with deps.uow() as uow:
        from sqlalchemy import select

        from storage.models import Person

        for p in uow.session.scalars(select(Person)):
            uow.identities.link(platform, p.name, p, deps.clock.now())
        uow.commit()
