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

from hub.api.deps import READERS, STAFF, StoreDep, access_policy, bearer
from hub.auth.tokens import Principal, resolve_token
from hub.cases import classes, intake
from hub.cases.lifecycle import Role
from hub.open311 import requests
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
    return requests.find(store, service_request_id.split(",")[:200] if service_request_id else None,
                         service_code, start_date, end_date, status if status and "," not in status else None)


@router.get("/requests/{service_request_id}.json", response_model=list[ServiceRequest], summary="One request")
def get_request(service_request_id: str, store: StoreDep) -> list[dict[str, Any]]:
    found = requests.find(store, [service_request_id])
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


