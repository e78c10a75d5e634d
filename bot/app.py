"""Composition root: settings → database, clock, renderer, router → `Deps`, handed to every handler.

Nothing else builds these; tests build their own `Deps` with a temporary database and a FakeClock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy.exc import OperationalError

from bot.clock import SystemClock
from bot.rendering import Renderer
from bot.settings import Settings
from storage.db import Database

log = logging.getLogger(__name__)


@dataclass
class Deps:
    settings: Settings
    db: Database
    clock: SystemClock
    renderer: Renderer = field(default_factory=Renderer)
    bot_names: tuple[str, ...] = ("换届助手",)
    db_errors: tuple[type[BaseException], ...] = (OperationalError,)
    extras: dict[str, Any] = field(default_factory=dict)
    _roster_version: int = 0

    @property
    def tz(self):
        return self.settings.tz

    def uow(self):
        return self.db.uow()

    @cached_property
    def router(self):
        from handlers import build_router

        return build_router()

    # The parser's roster is built once from the database and rebuilt after a roster import.
    def roster_changed(self) -> None:
        self._roster_version += 1
        self.__dict__.pop("_roster_cache", None)

    def roster(self):
        cached = self.__dict__.get("_roster_cache")
        if cached is None:
            from handlers.report_parser import Roster, RosterVillage

            with self.db.uow() as uow:
                rows = uow.regions.all_villages_with_township()
            cached = Roster([RosterVillage(name=name, township=town) for _vid, name, _tid, town in rows])
            cached.ids = {(name, town): vid for vid, name, _tid, town in rows}  # type: ignore[attr-defined]
            self.__dict__["_roster_cache"] = cached
        return cached

    @cached_property
    def plan(self):
        """The 换届 plan in force (content/plans/default.yaml unless HUANJIE_PLAN_FILE names another)."""
        from reminders.plan import DEFAULT_PLAN, load_plan

        return load_plan(self.settings.plan_file or DEFAULT_PLAN)

    def reload_plan(self, path=None):
        """Load a new plan; on a bad file raise PlanError and keep the plan in force."""
        from reminders.plan import DEFAULT_PLAN, load_plan

        new = load_plan(path or self.settings.plan_file or DEFAULT_PLAN)
        self.__dict__["plan"] = new
        return new

    def today(self):
        return self.clock.now().date()

    @cached_property
    def qa(self):
        """The handbook search engine, built on first use (about half a second). A handbook that cannot be
        loaded fails every later call at once with the same error, instead of being read again per question."""
        failed = self.__dict__.get("_qa_error")
        if failed is not None:
            raise failed
        from content.handbook import Handbook, QAEngine

        try:
            return QAEngine(Handbook.load())
        except (ValueError, OSError) as exc:  # HandbookError is a ValueError
            self.__dict__["_qa_error"] = exc
            raise


def build_deps(settings: Settings, clock: SystemClock | None = None, db: Database | None = None) -> Deps:
    return Deps(settings=settings, db=db or Database(settings.db_url), clock=clock or SystemClock(settings.tz))
