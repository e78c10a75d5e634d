"""Clocks: every "now" in the bot comes from an injected clock, timezone-aware in the configured zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


class SystemClock:
    def __init__(self, tz: ZoneInfo):
        self.tz = tz

    def now(self) -> datetime:
        return datetime.now(self.tz)

    def today(self) -> date:
        return self.now().date()


class FakeClock(SystemClock):
    """A clock tests move by hand: `clock.advance(hours=2)`, `clock.set(datetime(...))`."""

    def __init__(self, start: datetime, tz: ZoneInfo | None = None):
        if start.tzinfo is None:
            if tz is None:
                raise ValueError("FakeClock needs an aware datetime or a tz")
            start = start.replace(tzinfo=tz)
        super().__init__(tz or start.tzinfo)  # type: ignore[arg-type]
        self._now = start.astimezone(self.tz)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = (when if when.tzinfo else when.replace(tzinfo=self.tz)).astimezone(self.tz)

    def advance(self, **delta: float) -> None:
        self._now = self._now + timedelta(**delta)
