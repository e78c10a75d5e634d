"""China's working-day calendar for reminders: statutory holidays and make-up workdays (调休) from the
`chinesecalendar` package, plus content/calendar/extra.yaml for years it does not cover yet."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar
import yaml

log = logging.getLogger(__name__)
EXTRA_FILE = Path(__file__).resolve().parent.parent / "content" / "calendar" / "extra.yaml"


class WorkCalendar:
    def __init__(self, work_weekends: bool = False, extra_file: Path = EXTRA_FILE):
        self.work_weekends = work_weekends
        data = yaml.safe_load(extra_file.read_text(encoding="utf-8")) if extra_file.is_file() else {}
        data = data or {}
        self.extra_holidays = {date.fromisoformat(str(d)) for d in data.get("holidays") or []}
        self.extra_workdays = {date.fromisoformat(str(d)) for d in data.get("workdays") or []}
        self._warned: set[int] = set()

    def is_holiday(self, day: date) -> bool:
        """A statutory holiday (not a plain weekend)."""
        if day in self.extra_holidays:
            return True
        try:
            return chinese_calendar.is_holiday(day) and chinese_calendar.get_holiday_detail(day)[1] is not None
        except NotImplementedError:
            return False

    def is_workday(self, day: date) -> bool:
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        try:
            official = chinese_calendar.is_workday(day)
        except NotImplementedError:
            if day.year not in self._warned:
                self._warned.add(day.year)
                log.warning("no holiday data for %s: weekdays count as workdays; add the official schedule to %s",
                            day.year, EXTRA_FILE.name)
            official = day.weekday() < 5
        if official:
            return True
        # a weekend (not a statutory holiday) counts when the campaign works weekends
        return self.work_weekends and day.weekday() >= 5 and not self.is_holiday(day)

    def next_workday(self, day: date) -> date:
        nxt = day + timedelta(days=1)
        for _ in range(60):
            if self.is_workday(nxt):
                return nxt
            nxt += timedelta(days=1)
        return nxt

    def previous_workdays(self, day: date, count: int) -> list[date]:
        """The `count` workdays before `day` (most recent first)."""
        found: list[date] = []
        cur = day - timedelta(days=1)
        for _ in range(120):
            if len(found) == count:
                break
            if self.is_workday(cur):
                found.append(cur)
            cur -= timedelta(days=1)
        return found
