"""The working calendar deadlines run in: the country's official days (the `holidays` package) and the
bureau's own days off and working days, which an admin edits on the page."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from hub import errors
from hub.api.deps import READERS, CurrentUser, SettingsDep, StoreDep, require
from hub.cases import bureau_days
from hub.cases.lifecycle import Role
from hub.cases.national_calendar import official_days
from hub.errors import Refused

router = APIRouter(tags=["calendar"], dependencies=[Depends(require(*READERS))])


class BureauDays(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days_off: list[date] = Field(default_factory=list, max_length=1000)
    working_days: list[date] = Field(default_factory=list, max_length=1000)


@router.get("/calendar", summary="Official days off and make-up working days of a year, and the bureau's own")
def get_calendar(store: StoreDep, settings: SettingsDep,
                 year: int = Query(default_factory=lambda: date.today().year, ge=2000, le=2100)) -> dict[str, Any]:
    country = settings.calendar.country
    official: list[dict[str, Any]] = []
    source = "none"
    if country:
        days = official_days(country, [year], language=settings.calendar.language)
        official = sorted([{"date": d, "name": days.names.get(d, ""), "kind": "off"} for d in days.holidays]
                          + [{"date": d, "name": "", "kind": "work"} for d in days.extra_workdays],
                          key=lambda x: x["date"])
        source = f"holidays {bureau_days.package_version()} {country}"
    with store.engine.connect() as conn:
        off, work = bureau_days.load(conn)
    return {"year": year, "country": country, "source": source, "official": official,
            "days_off": sorted(off), "working_days": sorted(work)}


@router.put("/calendar", dependencies=[Depends(require(Role.ADMIN))],
            summary="Replace the bureau's own days off and working days; deadlines use them from now on")
def put_calendar(req: BureauDays, store: StoreDep, settings: SettingsDep, user: CurrentUser) -> dict[str, Any]:
    both = sorted(set(req.days_off) & set(req.working_days))
    if both:
        raise Refused(errors.INVALID, f"days_off and working_days both list {[d.isoformat() for d in both]}",
                      field="days_off", kind="overlap")
    bureau_days.replace(store, req.days_off, req.working_days, actor=user.actor)
    store.deadlines = bureau_days.deadlines(settings, req.days_off, req.working_days)
    return {"days_off": sorted(req.days_off), "working_days": sorted(req.working_days)}
