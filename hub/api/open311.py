"""Open311 GeoReport v2: services are problem classes, requests are cases.

Existing civic tools read cases and file reports through it. Tokens go in `api_key` (query for GET,
form field for POST, as the spec says) or in the Authorization header. `media_url` is recorded in the
description but never fetched (the hub makes no requests to addresses a client chooses).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.engine import Connection

from hub.api.deps import READERS, STAFF, StoreDep, access_policy, bearer
from hub.auth.tokens import Principal, resolve_token
from hub.cases import classes, intake
from hub.cases.lifecycle import OPEN311_CLOSED, CaseStatus, Role
from hub.storage import db
from hub.storage.core import StoreError
from protocol.catalog import Open311Service


class GeoReportError(BaseModel):
    code: int
    description: str


def georeport_error(status: int, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error as GeoReport v2 has it: a list of {code, description}, with the HTTP status."""
    return JSONResponse([{"code": status, "description": description}], status, headers=headers)


class GeoReportRoute(APIRoute):
    """Every error of an Open311 route, its auth dependency's included, in the GeoReport v2 shape
    (civic tools parse that, not this API's {"detail": ...}). Malformed input is a 400, as in the spec."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                return georeport_error(exc.status_code, str(exc.detail), dict(exc.headers or {}) or None)
            except RequestValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"] if p not in ("body", "query", "path"))
                return georeport_error(400, f"{where}: {err['msg']}" if where else str(err["msg"]))
            except StoreError as exc:
                return georeport_error(400, str(exc))

        return route


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": list[GeoReportError], "description": text}
    for code, text in ((400, "invalid input or unknown service_code"), (401, "missing or unknown api_key"),
                       (403, "role not allowed"), (404, "no such service request"))
}
router = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=GeoReportRoute, responses=_ERRORS)


@access_policy
async def open311_user(
    request: Request, store: StoreDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    api_key: Annotated[str | None, Query(max_length=256, description="API token")] = None,
) -> Principal:
    token = creds.credentials if creds else api_key
    if token is None and request.method == "POST":
        form = await request.form()
        value = form.get("api_key")
        token = value if isinstance(value, str) else None
    principal = resolve_token(store, token) if token else None
    if principal is None:
        raise HTTPException(401, "missing or unknown api_key", headers={"WWW-Authenticate": "Bearer"})
    allowed = set(READERS) if request.method == "GET" else {Role.SENSOR, *STAFF}
    if principal.role not in allowed | {Role.ADMIN}:
        raise HTTPException(403, f"role {principal.role.value!r} may not {request.method} Open311 requests")
    return principal


router.dependencies.append(Depends(open311_user))
User = Annotated[Principal, Depends(open311_user)]


class ServiceRequest(BaseModel):
    service_request_id: str
    status: str
    status_notes: str | None
    service_name: str
    service_code: str
    description: str | None
    agency_responsible: str | None
    requested_datetime: datetime
    updated_datetime: datetime
    expected_datetime: datetime | None
    lat: float | None
    long: float | None
    media_url: str | None


class Created(BaseModel):
    service_request_id: str
    service_notice: str | None = None


@router.get("/services.json", response_model=list[Open311Service], summary="Services = problem classes")
def services() -> list[Open311Service]:
    return [c.open311() for c in classes.catalog()]


def _request(row: dict[str, Any], media_sha: str | None) -> dict[str, Any]:
    status = CaseStatus(row["status"])
    return {
        "service_request_id": row["case_id"],
        "status": "closed" if status in OPEN311_CLOSED else "open",
        "status_notes": status.value,
        "service_name": classes.display_name(row["class_id"]),
        "service_code": row["class_id"],
        "description": row["description"],
        "agency_responsible": row["unit"],
        "requested_datetime": row["created_at"],
        "updated_datetime": row["updated_at"],
        "expected_datetime": row["deadline_at"],
        "lat": row["lat"],
        "long": row["lon"],
        "media_url": f"/evidence/{media_sha}" if media_sha else None,
    }


def _first_media(conn: Connection, case_ids: list[str]) -> dict[str, str]:
    """Each case's first evidence file (its earliest event's first media), in one query for all cases."""
    if not case_ids:
        return {}
    e, m = db.events, db.media
    rank = func.row_number().over(partition_by=e.c.case_id, order_by=(e.c.id, m.c.id)).label("rank")
    ranked = (select(e.c.case_id, m.c.sha256, rank).join(m, m.c.event_pk == e.c.id)
              .where(e.c.case_id.in_(case_ids)).subquery())
    return dict(conn.execute(select(ranked.c.case_id, ranked.c.sha256).where(ranked.c.rank == 1)).all())


def _requests(conn: Connection, query: Select[Any]) -> list[dict[str, Any]]:
    rows = [dict(r._mapping) for r in conn.execute(query)]
    media = _first_media(conn, [r["case_id"] for r in rows])
    return [_request(row, media.get(row["case_id"])) for row in rows]


@router.get("/requests.json", response_model=list[ServiceRequest], summary="Requests = cases")
def list_requests(
    store: StoreDep,
    service_request_id: Annotated[str | None, Query(description="comma-separated case ids")] = None,
    service_code: str | None = None,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    status: Annotated[str | None, Query(pattern=r"^(open|closed)(,(open|closed))?$")] = None,
) -> list[dict[str, Any]]:
    for value in (start_date, end_date):
        if value is not None and value.tzinfo is None:
            raise HTTPException(400, "start_date/end_date need a time zone (w3c format, e.g. 2026-11-23T09:00:00Z)")
    c = db.cases
    query = select(c).order_by(c.c.created_at.desc()).limit(1000)
    if service_request_id:
        query = query.where(c.c.case_id.in_(service_request_id.split(",")[:200]))
    if service_code:
        query = query.where(c.c.class_id == service_code)
    if start_date:
        query = query.where(c.c.created_at >= start_date)
    if end_date:
        query = query.where(c.c.created_at < end_date)
    if status and "," not in status:
        closed = [s.value for s in OPEN311_CLOSED]
        query = query.where(c.c.status.in_(closed) if status == "closed" else c.c.status.not_in(closed))
    with store.engine.connect() as conn:
        return _requests(conn, query)


@router.get("/requests/{service_request_id}.json", response_model=list[ServiceRequest], summary="One request")
def get_request(service_request_id: str, store: StoreDep) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        found = _requests(conn, select(db.cases).where(db.cases.c.case_id == service_request_id))
    if not found:
        raise HTTPException(404, f"no service request {service_request_id!r}")
    return found


@router.post("/requests.json", response_model=list[Created], summary="File a request (a manual report)")
def create_request(
    store: StoreDep,
    user: User,
    service_code: Annotated[str, Form(max_length=64)],
    lat: Annotated[float, Form(ge=-90, le=90)],
    long: Annotated[float, Form(ge=-180, le=180)],
    description: Annotated[str | None, Form(max_length=4000)] = None,
    media_url: Annotated[str | None, Form(max_length=2000)] = None,
    api_key: Annotated[str | None, Form(max_length=256)] = None,
) -> list[dict[str, Any]]:
    if classes.find(service_code) is None:
        raise HTTPException(400, f"unknown service_code {service_code!r}; see services.json")
    text = "\n".join(x for x in (description, f"media_url: {media_url}" if media_url else None) if x) or None
    try:
        report = intake.ManualReport(class_id=service_code, lat=lat, lon=long, description=text)
    except ValidationError as exc:
        raise HTTPException(400, exc.errors(include_url=False)[0]["msg"]) from exc
    result = intake.ingest_manual(store, report, user.name)
    notice = "joined an open request at this place" if not result.created else None
    return [{"service_request_id": result.case_id, "service_notice": notice}]


