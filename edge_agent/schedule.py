"""Weekly schedules in a camera's local time: windows by weekday, windows across midnight, holidays.

A window belongs to the day it starts on: `{days: [fri], start: "22:00", end: "06:00"}` covers Friday
22:00 to Saturday 06:00, and a holiday on Friday replaces that whole night. Times are wall-clock in the
schedule's IANA timezone (the camera's unless the schedule names its own), so DST shifts move with the
clock on the wall, as a bylaw means them.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DAY_S = 86400


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def index(self) -> int:  # type: ignore[override]  # the weekday's number; never used as str.index
        """0 = Monday, as `date.weekday()`."""
        return list(Weekday).index(self)


ALL_DAYS = list(Weekday)
DAY_GROUPS = {"daily": ALL_DAYS, "weekdays": ALL_DAYS[:5], "weekends": ALL_DAYS[5:]}


def parse_time_of_day(value: Any, *, allow_24: bool) -> int:
    """Seconds since midnight from "HH:MM" or "HH:MM:SS".

    An int is taken as minutes since midnight because YAML 1.1 reads an unquoted 18:00 as the
    base-60 number 1080 (= 18 h * 60 + 0 min).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a time like '18:00', got {value!r}")
    if isinstance(value, int):
        seconds = value * 60
    elif isinstance(value, str):
        parts = value.strip().split(":")
        if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
            raise ValueError(f"expected a time like '18:00' or '18:00:30', got {value!r}")
        h, m, s = (int(p) for p in (*parts, "0")[:3])
        if m >= 60 or s >= 60:
            raise ValueError(f"minutes and seconds must be < 60, got {value!r}")
        seconds = h * 3600 + m * 60 + s
    else:
        raise ValueError(f"expected a time like '18:00', got {value!r}")
    limit = DAY_S if allow_24 else DAY_S - 1
    if not 0 <= seconds <= limit:
        raise ValueError(f"time {value!r} is outside 00:00-{'24:00' if allow_24 else '23:59:59'}")
    return seconds


def format_time_of_day(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


class DayWindow(BaseModel):
    """A time span within a day; `end` <= `start` runs past midnight into the next day."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str = Field(description='"HH:MM" local time the window opens')
    end: str = Field(description='"HH:MM" local time it closes (exclusive); "24:00" = end of day')

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> str:
        return format_time_of_day(parse_time_of_day(value, allow_24=False))

    @field_validator("end", mode="before")
    @classmethod
    def _end(cls, value: Any) -> str:
        return format_time_of_day(parse_time_of_day(value, allow_24=True))

    @model_validator(mode="after")
    def _not_empty(self) -> DayWindow:
        if self.start_s == self.end_s % DAY_S and self.end_s != DAY_S:
            raise ValueError(f"window {self.start}-{self.end} is empty; for a whole day write "
                             "start: '00:00', end: '24:00'")
        return self

    @cached_property
    def start_s(self) -> int:
        return parse_time_of_day(self.start, allow_24=False)

    @cached_property
    def end_s(self) -> int:
        return parse_time_of_day(self.end, allow_24=True)

    @property
    def crosses_midnight(self) -> bool:
        return self.end_s <= self.start_s

    def covers_own_day(self, second_of_day: float) -> bool:
        """The part of the window on the day it starts."""
        end = DAY_S if self.crosses_midnight else self.end_s
        return self.start_s <= second_of_day < end

    def covers_next_day(self, second_of_day: float) -> bool:
        """The part after midnight, on the following day."""
        return self.crosses_midnight and second_of_day < self.end_s


class TimeWindow(DayWindow):
    """A window on some weekdays. `days` takes weekday names or one of daily / weekdays / weekends."""

    days: list[Weekday] = Field(default_factory=lambda: list(ALL_DAYS), min_length=1)

    @field_validator("days", mode="before")
    @classmethod
    def _expand_groups(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            return value
        out: list[Any] = []
        for item in items:
            key = item.lower() if isinstance(item, str) else item
            out.extend(DAY_GROUPS.get(key, [key]))
        return out


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone {name!r} (e.g. 'Asia/Shanghai')") from None
    return name


class ScheduleConfig(BaseModel):
    """When something applies, in local time.

    windows: weekly windows; holidays: dates on which `holiday_windows` replace the weekly windows (none:
    off all day); workdays: make-up working days (调休) that follow the windows of `workday_as`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    windows: list[TimeWindow] = Field(default_factory=list)
    holidays: list[date] = Field(default_factory=list)
    holiday_windows: list[DayWindow] = Field(default_factory=list)
    workdays: list[date] = Field(default_factory=list)
    workday_as: Weekday = Weekday.MON
    timezone: str | None = Field(default=None, description="IANA name; default: the camera's timezone")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @model_validator(mode="after")
    def _consistent(self) -> ScheduleConfig:
        if not self.windows and not self.holiday_windows:
            raise ValueError("schedule has no windows: give `windows` (and/or `holiday_windows`)")
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            raise ValueError(f"dates {[d.isoformat() for d in both]} are in both holidays and workdays")
        return self


class Schedule:
    """A ScheduleConfig bound to a timezone; `active(epoch_s)` says whether a moment is inside it."""

    def __init__(self, config: ScheduleConfig, timezone: str = "UTC") -> None:
        self.config = config
        self.tz = ZoneInfo(config.timezone or check_timezone(timezone))
        self._holidays = frozenset(config.holidays)
        self._workdays = frozenset(config.workdays)

    def windows_for(self, day: date) -> list[DayWindow]:
        """The windows that start on a local calendar day."""
        if day in self._holidays:
            return list(self.config.holiday_windows)
        weekday = self.config.workday_as.index if day in self._workdays else day.weekday()
        return [w for w in self.config.windows if any(d.index == weekday for d in w.days)]

    def active(self, epoch_s: float) -> bool:
        local = datetime.fromtimestamp(epoch_s, self.tz)
        sod = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        today = local.date()
        if any(w.covers_own_day(sod) for w in self.windows_for(today)):
            return True
        return any(w.covers_next_day(sod) for w in self.windows_for(today - timedelta(days=1)))
