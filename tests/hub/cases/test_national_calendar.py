"""The working calendar's default comes from the holidays package: China's 2026 calendar as announced
(Spring Festival off, its make-up Saturdays worked), and the bureau's own days on top."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from hub.cases.national_calendar import official_days, with_bureau_changes
from hub.cases.workcal import WorkingCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")


def calendar(days) -> WorkingCalendar:  # type: ignore[no-untyped-def]
    return WorkingCalendar(tz=SHANGHAI, holidays=days.holidays, extra_workdays=days.extra_workdays)


def test_china_2026_holidays_and_make_up_weekends() -> None:
    days = official_days("CN", [2026], language="zh_CN")
    cal = calendar(days)
    assert not cal.is_workday(date(2026, 2, 17))  # Spring Festival, a Tuesday
    assert not cal.is_workday(date(2026, 10, 1))  # National Day
    assert cal.is_workday(date(2026, 2, 14))  # a Saturday worked to make up for the Festival week
    assert cal.is_workday(date(2026, 10, 10))  # a Saturday worked for National Day week
    assert cal.is_workday(date(2026, 3, 2))  # an ordinary Monday
    assert not cal.is_workday(date(2026, 3, 7))  # an ordinary Saturday
    assert days.names[date(2026, 10, 1)] == "国庆节"
    # one working hour from Wednesday 2026-09-30 17:00: half an hour that day, the rest after Golden Week
    start = datetime(2026, 9, 30, 17, 0, tzinfo=SHANGHAI).astimezone(UTC)
    assert cal.add_working_hours(start, 1.0) == datetime(2026, 10, 8, 9, 0, tzinfo=SHANGHAI).astimezone(UTC)


def test_bureau_changes_win() -> None:
    official = official_days("CN", [2026])
    days = with_bureau_changes(official, days_off=[date(2026, 3, 2)], working_days=[date(2026, 10, 1),
                                                                                     date(2026, 3, 7)])
    cal = calendar(days)
    assert not cal.is_workday(date(2026, 3, 2))  # the bureau's own day off
    assert cal.is_workday(date(2026, 10, 1))  # the bureau works National Day
    assert cal.is_workday(date(2026, 3, 7))  # and an ordinary Saturday
    assert not cal.is_workday(date(2026, 2, 17))  # the rest stays official


def test_unknown_country_is_named() -> None:
    with pytest.raises(ValueError, match="'XX'"):
        official_days("XX", [2026])
