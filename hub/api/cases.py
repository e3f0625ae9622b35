"""Cases: list with filters, detail with evidence and timeline, lifecycle transitions."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from hub import errors
from hub.api.deps import READERS, STAFF, CurrentUser, SettingsDep, StoreDep, require
from hub.api.schemas import ApiTime, CaseDetail, CaseOut, CasePage, PlateIn, TransitionIn
from hub.auth.tokens import Principal
from hub.cases import plates, queries, transitions
from hub.cases.lifecycle import TERMINAL_STATUSES, Action, CaseNotFound, CaseStatus, Role
from hub.cases.routing import route_unit, routing_note
from hub.errors import Refused
from hub.settings import HubSettings

router = APIRouter(prefix="/cases", tags=["cases"], dependencies=[Depends(require(*READERS))])

SortKey = Annotated[
    str,
    Query(pattern=r"^-?(" + "|".join(queries.SORTABLE) + ")$", description="column; '-' prefix: descending"),
]


def _with_routed_unit(case: dict[str, Any], settings: HubSettings) -> dict[str, Any]:
    """Before dispatch, the unit routing would pick, so the reviewer sees where the case will go."""
    if case["unit"] is None and CaseStatus(case["status"]) not in TERMINAL_STATUSES:
        case["routed_unit"] = route_unit(case, settings.units, settings.default_unit)
    case["routing_note"] = routing_note(case, settings.units)
    return case


def _bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        parts = tuple(float(p) for p in value.split(","))
    except ValueError:
        parts = ()
    if (len(parts) != 4 or not all(math.isfinite(p) for p in parts) or parts[0] > parts[2]
            or parts[1] > parts[3]):
        raise Refused(errors.INVALID, f"bbox must be min_lon,min_lat,max_lon,max_lat (finite numbers) with "
                      f"min <= max; got {value!r}", field="bbox", kind="bbox")
    return parts


@router.get("", response_model=CasePage, summary="List cases")
def list_cases(
    store: StoreDep,
    settings: SettingsDep,
    user: CurrentUser,
    status: Annotated[list[CaseStatus] | None, Query()] = None,
    class_id: str | None = None,
    camera_id: str | None = None,
    unit: str | None = None,
    source: str | None = None,
    since: Annotated[ApiTime | None, Query(description="created at or after (ISO 8601 with zone)")] = None,
    until: Annotated[ApiTime | None, Query(description="created before")] = None,
    bbox: Annotated[str | None, Query(description="map bbox: min_lon,min_lat,max_lon,max_lat")] = None,
    overdue: Annotated[bool | None, Query(description="true: the overdue pool")] = None,
    placed: Annotated[bool | None, Query(description="false: cases with no position (filed with only an address; "
                                         "the map lists them), true: the others")] = None,
    plate: Annotated[str | None, Query(max_length=16, description="licence plate: a whole plate matches exactly "
                                       "(苏E·D51712 or 苏ED51712), a part matches every plate holding it (D517); "
                                       "not for the reader role")] = None,
    sort: SortKey = "-created_at",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise Refused(errors.INVALID, f"{name} needs a time zone, e.g. 2026-11-23T09:00:00Z", field=name,
                          kind="time_zone")
    f = queries.CaseFilter(status=status or [], class_id=class_id, camera_id=camera_id, unit=unit, source=source,
                           since=since, until=until, bbox=_bbox(bbox), overdue=overdue, plate=_plate(plate, user),
                           placed=placed)
    with store.engine.connect() as conn:
        page = queries.list_cases(conn, f, sort=sort, offset=offset, limit=limit, role=user.role)
    page["items"] = [_with_routed_unit(c, settings) for c in page["items"]]
    return page


def _plate(value: str | None, user: Principal) -> plates.PlateQuery | None:
    if value is None:
        return None
    if not plates.may_see_plates(user.role):
        raise Refused(errors.PLATE_FORBIDDEN, f"the {user.role.value} role may not search by licence plate "
                      "(personal data)", role=user.role.value)
    try:
        return plates.PlateQuery.parse(value)
    except ValueError as exc:
        raise Refused(errors.INVALID, str(exc), field="plate", kind="plate") from None


@router.get("/{case_id}", response_model=CaseDetail, summary="A case with its evidence and timeline")
def get_case(case_id: str, store: StoreDep, settings: SettingsDep, user: CurrentUser) -> dict[str, Any]:
    with store.engine.connect() as conn:
        detail = queries.case_detail(conn, case_id, user.role)
    if detail is None:
        raise CaseNotFound(case_id)
    return _with_routed_unit(detail, settings)


@router.post("/{case_id}/undo", response_model=CaseOut, dependencies=[Depends(require(*STAFF))],
             summary="Take back your own confirm or void within the grace period (an audited undo)")
def undo(case_id: str, store: StoreDep, settings: SettingsDep, user: CurrentUser) -> dict[str, Any]:
    row = transitions.undo(store, case_id, actor=user.actor, grace_s=settings.undo_grace_s)
    return _with_routed_unit(queries.case_out(row, row["updated_at"], user.role), settings)


@router.post("/{case_id}/plate", response_model=CaseOut, summary="Correct a misread licence plate (audited)",
             dependencies=[Depends(require(Role.ADMIN, Role.REVIEWER))])
def correct_plate(case_id: str, body: PlateIn, store: StoreDep, settings: SettingsDep,
                  user: CurrentUser) -> dict[str, Any]:
    try:
        row = plates.correct(store, case_id, body.text, body.note, actor=user.actor)
    except ValueError as exc:
        raise Refused(errors.INVALID, str(exc), field="text", kind="plate") from None
    return _with_routed_unit(queries.case_out(row, row["updated_at"], user.role), settings)


@router.post(
    "/{case_id}/{action}",
    response_model=CaseOut,
    summary="Move a case through its lifecycle",
)
def transition(
    case_id: str, action: Action, store: StoreDep, settings: SettingsDep, user: CurrentUser,
    body: TransitionIn | None = None,
) -> dict[str, Any]:
    body = body or TransitionIn()
    row = transitions.transition(
        store, case_id, action, actor=user.actor, role=user.role, note=body.note, unit=body.unit,
        photo_sha256=body.photo_sha256, units=settings.units, default_unit=settings.default_unit,
    )
    return _with_routed_unit(queries.case_out(row, row["updated_at"], user.role), settings)
