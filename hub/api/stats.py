"""Statistics: precision per class and per camera, volume per day, time to close, on-time rate per unit."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query

from hub import errors
from hub.api.deps import READERS, SettingsDep, StoreDep, require
from hub.api.schemas import ApiTime, StatsOut
from hub.cases import queries
from hub.errors import Refused
from hub.storage import db

router = APIRouter(prefix="/stats", tags=["stats"], dependencies=[Depends(require(*READERS))])


@router.get("", response_model=StatsOut, summary="Statistics over a time range (default: last 30 days)")
def stats(
    store: StoreDep,
    settings: SettingsDep,
    since: Annotated[ApiTime | None, Query(description="default: 30 days ago")] = None,
    until: Annotated[ApiTime | None, Query(description="default: now")] = None,
    camera_limit: Annotated[int, Query(ge=1, le=500, description="rows of per_camera (worst first)")] = 50,
) -> dict[str, Any]:
    until = until or db.utcnow() + timedelta(seconds=1)
    try:
        since = since or until - timedelta(days=30)
    except OverflowError:
        raise Refused(errors.INVALID, f"until {until.isoformat()} is too early to count 30 days back from",
                      field="until", kind="range") from None
    if since.tzinfo is None or until.tzinfo is None:
        raise Refused(errors.INVALID, "since and until need a time zone, e.g. 2026-11-23T09:00:00Z", field="since",
                      kind="time_zone")
    with store.engine.connect() as conn:
        return queries.statistics_for(conn, since, until, camera_limit, tz=ZoneInfo(settings.calendar.timezone))
