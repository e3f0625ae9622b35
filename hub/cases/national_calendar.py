"""The official working calendar of a country, from the maintained `holidays` package, with the bureau's
own changes on top.

China's State Council announces each year's public holidays and the weekend days worked to make up
for the bridge days (调休); `holidays` carries both (its China calendar lists the days off, including
substituted ones, and `weekend_workdays`). A bureau adds its own days off (a local festival, a typhoon
day) and its own working days (a weekend worked for an inspection): the bureau's working days win over
everything, its days off over the national calendar.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import holidays as holidays_package


@dataclass(frozen=True)
class DaysOff:
    """Days off and weekend working days, as WorkingCalendar takes them."""

    holidays: frozenset[date]
    extra_workdays: frozenset[date]
    names: dict[date, str]  # what each official day is (for the page)


def official_days(country: str, years: Iterable[int], language: str | None = None) -> DaysOff:
    """The country's public holidays (with substituted days off) and weekend working days for `years`,
    named in `language` where the package has it (zh_CN for China). ValueError naming the country when
    the package does not know it."""
    wanted = sorted(set(years))
    try:
        calendar = holidays_package.country_holidays(country, years=wanted, language=language)
    except NotImplementedError:
        raise ValueError(f"country {country!r}: the holidays package has no calendar for it") from None
    workdays = {d for d in getattr(calendar, "weekend_workdays", ()) if d.year in wanted}
    return DaysOff(holidays=frozenset(calendar.keys()), extra_workdays=frozenset(workdays),
                   names={d: str(n) for d, n in calendar.items()})


def with_bureau_changes(official: DaysOff, days_off: Iterable[date], working_days: Iterable[date]) -> DaysOff:
    """The bureau's days off are added to the official ones; its working days are worked whatever the
    official calendar says (taken out of the days off, and worked even on a weekend)."""
    work = frozenset(working_days)
    off = (official.holidays | frozenset(days_off)) - work
    return DaysOff(holidays=off, extra_workdays=(official.extra_workdays - frozenset(days_off)) | work,
                   names=official.names)
