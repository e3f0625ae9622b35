"""Schedules: windows across midnight, another timezone, holidays and make-up workdays, config errors."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from edge_agent.schedule import Schedule, ScheduleConfig

SH = ZoneInfo("Asia/Shanghai")


def at(text: str, tz: ZoneInfo = SH) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def schedule(text: str, tz: str = "Asia/Shanghai") -> Schedule:
    return Schedule(ScheduleConfig.model_validate(yaml.safe_load(text)), tz)


def test_window_across_midnight_belongs_to_its_start_day() -> None:
    s = schedule("windows: [{days: [fri], start: 22:00, end: 06:00}]")  # unquoted YAML times work too
    assert s.active(at("2026-05-22T22:00:00"))  # Friday 22:00, start inclusive
    assert s.active(at("2026-05-23T05:59:59"))  # Saturday morning: Friday's window
    assert not s.active(at("2026-05-23T06:00:00"))  # end exclusive
    assert not s.active(at("2026-05-23T23:00:00"))  # Saturday night: no window starts Saturday
    assert not s.active(at("2026-05-22T05:00:00"))  # Friday morning belongs to Thursday


def test_same_moment_in_another_timezone() -> None:
    s = schedule("windows: [{days: daily, start: '07:00', end: '09:00'}]", tz="Asia/Shanghai")
    moment = at("2026-05-20T00:30:00", ZoneInfo("UTC"))  # 08:30 in Shanghai
    assert s.active(moment)
    assert not schedule("windows: [{days: daily, start: '07:00', end: '09:00'}]", tz="Europe/Berlin").active(moment)
    own = schedule("{timezone: America/New_York, windows: [{start: '20:00', end: '21:00'}]}", tz="Asia/Shanghai")
    assert own.active(moment)  # 20:30 the previous evening in New York


def test_dst_follows_the_wall_clock() -> None:
    s = schedule("windows: [{days: daily, start: '02:30', end: '03:30'}]", tz="Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    assert s.active(at("2026-03-28T03:00:00", berlin))
    assert s.active(at("2026-03-29T03:15:00", berlin))  # after the spring-forward jump 02:00 -> 03:00


def test_holidays_replace_weekly_windows_and_workdays_borrow_them() -> None:
    s = schedule("""
windows: [{days: weekdays, start: '07:00', end: '19:00'}]
holidays: [2026-10-01]
holiday_windows: [{start: '10:00', end: '12:00'}]
workdays: [2026-10-10]
""")
    assert not s.active(at("2026-10-01T08:00:00"))  # a Thursday, but a holiday
    assert s.active(at("2026-10-01T11:00:00"))
    assert s.active(at("2026-10-10T08:00:00"))  # a Saturday worked as a Monday (调休)
    assert not s.active(at("2026-10-11T08:00:00"))


def test_whole_day_window() -> None:
    s = schedule("windows: [{days: [sun], start: '00:00', end: '24:00'}]")
    assert s.active(at("2026-05-24T23:59:59")) and not s.active(at("2026-05-25T00:00:00"))


@pytest.mark.parametrize(("text", "field", "message"), [
    ("windows: [{start: '25:00', end: '06:00'}]", "windows.0.start", "outside"),
    ("windows: [{start: '7pm', end: '06:00'}]", "windows.0.start", "expected a time"),
    ("windows: [{start: '07:00', end: '07:00'}]", "windows.0", "empty"),
    ("windows: [{days: [mon, funday], start: '07:00', end: '08:00'}]", "windows.0.days.1", "Input should be"),
    ("{timezone: Mars/Olympus, windows: [{start: '07:00', end: '08:00'}]}", "timezone", "unknown IANA timezone"),
    ("holidays: [2026-10-01]", "", "no windows"),
    ("{windows: [{start: '07:00', end: '08:00'}], holidays: [2026-10-01], workdays: [2026-10-01]}", "",
     "both holidays and workdays"),
])
def test_config_errors_name_the_field(text: str, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        ScheduleConfig.model_validate(yaml.safe_load(text))
    err = info.value.errors()[0]
    assert ".".join(str(p) for p in err["loc"]) == field
    assert message in err["msg"]
