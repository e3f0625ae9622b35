"""Who the caller is and the bureau settings a client needs to show cases (time zone, units)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from hub.api.deps import ALL_ROLES, CurrentUser, SettingsDep, require
from hub.api.schemas import MeOut

router = APIRouter(prefix="/me", tags=["session"], dependencies=[Depends(require(*ALL_ROLES))])


@router.get("", response_model=MeOut, summary="The caller's name and role, the bureau time zone and units")
def me(user: CurrentUser, settings: SettingsDep) -> dict[str, Any]:
    units = [{"id": u.id, "name": u.name or u.id} for u in settings.units]
    if settings.default_unit and settings.default_unit not in {u["id"] for u in units}:
        units.append({"id": settings.default_unit, "name": settings.default_unit})
    return {"name": user.name, "role": user.role, "timezone": settings.calendar.timezone, "units": units,
            "default_unit": settings.default_unit, "undo_grace_s": settings.undo_grace_s,
            "csrf_token": user.csrf_token,
            "session_idle_minutes": settings.accounts.session_idle_minutes if user.session_id is not None else None}
