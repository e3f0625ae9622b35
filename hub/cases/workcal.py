"""A working calendar: deadlines in city management run in working hours, not wall-clock hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_MAX_DAYS = 3 * 366  # a deadline further than this means a calendar with (almost) no working time


@dataclass(frozen=True)
class WorkingCalendar:
    """Working periods per working day in a time zone; holidays off, make-up days on."""

    tz: ZoneInfo
    periods: tuple[tuple[time, time], ...] = ((time(8, 30), time(12, 0)), (time(13, 30), time(17, 30)))
    workdays: frozenset[int] = frozenset(range(5))  # Monday = 0
    holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()  # weekend days worked to make up for a holiday

    def is_workday(self, day: date) -> bool:
        if day in self.extra_workdays:
            return True
        return day.weekday() in self.workdays and day not in self.holidays

    def _segments(self, day: date) -> list[tuple[datetime, datetime]]:
        if not self.is_workday(day):
            return []
        return [(datetime.combine(day, a, self.tz), datetime.combine(day, b, self.tz)) for a, b in self.periods]

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The instant `hours` working hours after `start` (UTC-aware in, UTC-aware out)."""
        remaining = timedelta(hours=hours)
        cursor = start.astimezone(self.tz)
        day = cursor.date()
        for _ in range(_MAX_DAYS):
            for seg_start, seg_end in self._segments(day):
                begin = max(seg_start, cursor)
                if begin >= seg_end:
                    continue
                if begin + remaining <= seg_end:
                    return (begin + remaining).astimezone(UTC)
                remaining -= seg_end - begin
            day += timedelta(days=1)
        raise ValueError(f"the working calendar has fewer than {hours} working hours in {_MAX_DAYS} days")

    def working_hours_between(self, start: datetime, end: datetime) -> float:
        """Working hours elapsed from `start` to `end` (0 when end <= start)."""
        if end <= start:
            return 0.0
        total = timedelta()
        day, last = start.astimezone(self.tz).date(), end.astimezone(self.tz).date()
        while day <= last:
            for seg_start, seg_end in self._segments(day):
                lo, hi = max(seg_start, start), min(seg_end, end)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total.total_seconds() / 3600.0
