"""Open311 GeoReport v2: services are problem classes, requests are cases.

Existing civic tools read cases and file reports through it. Every endpoint answers as `.json` and `.xml`
(hub.open311.formats), with `jurisdiction_id` accepted (the hub is one jurisdiction). Reads are public by
default, as the spec has them (setting `open311_public_reads`), with reporters' contacts masked for the
public and readers; filing a request needs a token, in `api_key` (form field for POST, query for GET, as
the spec says) or in the Authorization header. A `media_url` is kept as a link and fetched in the background
under the webhooks' address rules (hub.open311.media; setting `open311_media_fetch`). A report with an
address but no lat/long, as the spec allows, is placed from the bureau's gazetteer when it lists the
address, else kept as a case with the address and no place, or refused, per setting `address_only_reports`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.api.deps import READERS, STAFF, SettingsDep, StoreDep, access_policy, bearer
from hub.api.schemas import ApiTime
from hub.auth.tokens import Principal, TokenExpired, resolve_token
from hub.cases import classes, intake
from hub.cases.contacts import may_see_contacts
from hub.cases.lifecycle import Role
from hub.open311 import media, requests
from hub.open311.formats import FORMATS, MEDIA_TYPES, Format, error_body, format_of, object_xml, to_xml
from hub.settings import HubSettings
from hub.storage.core import StoreError
from protocol.catalog import Open311Service


class GeoReportError(BaseModel):
    code: int
    description: str


def georeport_error(status: int, description: str, fmt: Format = "json",
                    headers: dict[str, str] | None = None) -> Response:
    """An error as GeoReport v2 has it: a list of {code, description} (JSON) or <errors> (XML)."""
    return Response(error_body(status, description, fmt), status, headers=headers, media_type=MEDIA_TYPES[fmt])


async def open311_http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """The app's handler for HTTP errors raised outside any route (unknown path, method not allowed):
    under /open311/ in the GeoReport shape and the asked-for format, elsewhere FastAPI's usual body."""
    if request.url.path.startswith("/open311/"):
        return georeport_error(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}",
                               format_of(request.url.path), dict(exc.headers or {}) or None)
    return await http_exception_handler(request, exc)


class GeoReportRoute(APIRoute):
    """Every error of an Open311 route, its auth dependency's included, in the GeoReport v2 shape
    (civic tools parse that, not this API's {"detail": ...}). Malformed input is a 400, as in the spec."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            fmt = format_of(request.url.path)
            try:
                return await handler(request)
            except StarletteHTTPException as exc:  # FastAPI's own (e.g. a body that does not parse) included
                return georeport_error(exc.status_code, str(exc.detail), fmt, dict(exc.headers or {}) or None)
            except RequestValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"] if p not in ("body", "query", "path"))
                return georeport_error(400, f"{where}: {err['msg']}" if where else str(err["msg"]), fmt)
            except StoreError as exc:
                return georeport_error(400, str(exc), fmt)

        return route


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": list[GeoReportError], "description": text,
           "content": {MEDIA_TYPES["xml"].split(";")[0]: {"schema": {"type": "string"}}}}
    for code, text in ((400, "invalid input or unknown service_code"), (401, "missing or unknown api_key"),
                       (403, "role not allowed"), (404, "no such service request or service"))
}
router = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=GeoReportRoute, responses=_ERRORS)


JurisdictionId = Annotated[str | None, Query(max_length=64, description="accepted; the hub is one jurisdiction")]


@access_policy
async def open311_user(
    request: Request, store: StoreDep, settings: SettingsDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    api_key: Annotated[str | None, Query(max_length=256, description="API token (POST: form field)")] = None,
) -> Principal | None:
    """Who calls; None: the public (a GET without any token, where reads are public)."""
    token = creds.credentials if creds else api_key
    if token is None and request.method == "POST":
        form = await request.form()
        value = form.get("api_key")
        token = value if isinstance(value, str) else None
    if token is None and request.method == "GET" and settings.open311_public_reads:
        return None
    try:
        principal = resolve_token(store, token) if token else None
    except TokenExpired as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc
    if principal is None:
        raise HTTPException(401, "missing or unknown api_key", headers={"WWW-Authenticate": "Bearer"})
    allowed = set(READERS) if request.method == "GET" else {Role.SENSOR, *STAFF}
    if principal.role not in allowed | {Role.ADMIN}:
        raise HTTPException(403, f"role {principal.role.value!r} may not {request.method} Open311 requests")
    return principal


router.dependencies.append(Depends(open311_user))
User = Annotated[Principal | None, Depends(open311_user)]


class ServiceRequest(BaseModel):
    service_request_id: str
    status: str
    status_notes: str | None
    service_name: str
    service_code: str
    description: str | None
    agency_responsible: str | None
    service_notice: str | None = None
    requested_datetime: datetime
    updated_datetime: datetime
    expected_datetime: datetime | None
    address: str | None = None
    lat: float | None
    long: float | None
    media_url: str | None


class Created(BaseModel):
    service_request_id: str
    service_notice: str | None = None
    account_id: str | None = None


class ServiceDefinition(BaseModel):
    service_code: str
    attributes: list[dict[str, Any]]


def _reply(fmt: Format, model: Any, value: Any, root: str, item: str | None) -> Response:
    """`value` checked as `model`, in `fmt`: JSON as the API's models dump it, or the spec's XML."""
    adapter = TypeAdapter(model)
    data = adapter.dump_python(adapter.validate_python(value), mode="json")
    if fmt == "json":
        return Response(json.dumps(data, ensure_ascii=False).encode(), media_type=MEDIA_TYPES["json"])
    body = to_xml(root, item, data) if item else object_xml(root, data)
    return Response(body, media_type=MEDIA_TYPES["xml"])


def _both(path: str, method: str, model: Any, summary: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers the endpoint as `path.json` and `path.xml` (one function: the format is the path's suffix)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        for fmt in FORMATS:
            xml = {200: {"content": {MEDIA_TYPES["xml"].split(";")[0]: {"schema": {"type": "string"}}}}}
            router.add_api_route(
                f"{path}.{fmt}", fn, methods=[method], summary=f"{summary} ({fmt.upper()})",
                operation_id=f"open311_{fn.__name__}_{fmt}", response_class=Response,
                response_model=model if fmt == "json" else None,
                responses=xml if fmt == "xml" else None)  # type: ignore[arg-type]  # str|int keys, as FastAPI takes
        return fn

    return register


@_both("/services", "GET", list[Open311Service], "Services = problem classes")
def services(request: Request, jurisdiction_id: JurisdictionId = None) -> Response:
    rows = [c.open311() for c in classes.catalog()]
    return _reply(format_of(request.url.path), list[Open311Service], rows, "services", "service")


@_both("/services/{service_code}", "GET", ServiceDefinition, "A service's definition (no extra attributes)")
def service_definition(request: Request, service_code: str, jurisdiction_id: JurisdictionId = None) -> Response:
    if classes.find(service_code) is None:
        raise HTTPException(404, f"unknown service_code {service_code!r}; see services.json")
    return _reply(format_of(request.url.path), ServiceDefinition,
                  {"service_code": service_code, "attributes": []}, "service_definition", None)


def _shown(found: list[dict[str, Any]], user: Principal | None) -> list[dict[str, Any]]:
    return found if user is not None and may_see_contacts(user.role) else [requests.masked(r) for r in found]


@_both("/requests", "GET", list[ServiceRequest], "Requests = cases")
def list_requests(
    request: Request,
    store: StoreDep,
    user: User,
    service_request_id: Annotated[str | None, Query(description="comma-separated case ids")] = None,
    service_code: str | None = None,
    start_date: ApiTime | None = None,
    end_date: ApiTime | None = None,
    status: Annotated[str | None, Query(pattern=r"^(open|closed)(,(open|closed))?$")] = None,
    jurisdiction_id: JurisdictionId = None,
) -> Response:
    for value in (start_date, end_date):
        if value is not None and value.tzinfo is None:
            raise HTTPException(400, "start_date/end_date need a time zone (w3c format, e.g. 2026-11-23T09:00:00Z)")
    found = requests.find(store, service_request_id.split(",")[:200] if service_request_id else None,
                          service_code, start_date, end_date, status if status and "," not in status else None)
    return _reply(format_of(request.url.path), list[ServiceRequest], _shown(found, user), "service_requests",
                  "request")


@_both("/requests/{service_request_id}", "GET", list[ServiceRequest], "One request")
def get_request(request: Request, service_request_id: str, store: StoreDep, user: User,
                jurisdiction_id: JurisdictionId = None) -> Response:
    found = requests.find(store, [service_request_id])
    if not found:
        raise HTTPException(404, f"no service request {service_request_id!r}")
    return _reply(format_of(request.url.path), list[ServiceRequest], _shown(found, user), "service_requests",
                  "request")


def _report(settings: HubSettings, service_code: str, lat: float | None, long: float | None, address: str | None,
            text: str | None) -> intake.ManualReport:
    """The filed request as a person's report, placed (lat/long, or the gazetteer's for its address) or kept
    with only its address, as the hub's settings say."""
    if (lat is None) != (long is None):
        raise HTTPException(400, "lat and long: give both or neither")
    if lat is None and not address:
        raise HTTPException(400, "lat and long are required (both), or address_string or address_id")
    try:
        report = intake.ManualReport(class_id=service_code, lat=lat, lon=long, address=address, description=text)
        return intake.placed(report, settings.address_only_reports == "keep", settings.places())
    except intake.AddressRefused as exc:
        raise HTTPException(400, str(exc)) from exc
    except ValidationError as exc:
        raise HTTPException(400, exc.errors(include_url=False)[0]["msg"]) from exc


def _notice(result: intake.IngestResult, report: intake.ManualReport, media_url: str | None,
            settings: HubSettings) -> str:
    parts = ["joined an open request at this place" if not result.created
             else "received; a reviewer confirms it before it is dispatched"]
    if report.address_only:
        parts.append("kept with its address and no position (not on the map; routed by service)")
    if media_url:
        parts.append("the photo at media_url is being fetched" if settings.open311_media_fetch
                     else "media_url kept as a link")
    return "; ".join(parts)


@_both("/requests", "POST", list[Created], "File a request (a manual report)")
def create_request(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    user: User,
    service_code: Annotated[str, Form(max_length=64)],
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
    long: Annotated[float | None, Form(ge=-180, le=180)] = None,
    address_string: Annotated[str | None, Form(max_length=500)] = None,
    address_id: Annotated[str | None, Form(max_length=200)] = None,
    description: Annotated[str | None, Form(max_length=4000)] = None,
    media_url: Annotated[str | None, Form(max_length=2000, pattern=r"^https?://\S+$")] = None,
    email: Annotated[str | None, Form(max_length=200)] = None,
    first_name: Annotated[str | None, Form(max_length=100)] = None,
    last_name: Annotated[str | None, Form(max_length=100)] = None,
    phone: Annotated[str | None, Form(max_length=50)] = None,
    device_id: Annotated[str | None, Form(max_length=200)] = None,
    account_id: Annotated[str | None, Form(max_length=200)] = None,
    jurisdiction_id: Annotated[str | None, Form(max_length=64)] = None,
    api_key: Annotated[str | None, Form(max_length=256)] = None,
) -> Response:
    assert user is not None  # POST never runs as the public (open311_user)
    if classes.find(service_code) is None:
        raise HTTPException(400, f"unknown service_code {service_code!r}; see services.json")
    name = " ".join(x for x in (first_name, last_name) if x)
    text = requests.describe(description, media_url, [x for x in (name, email, phone) if x])
    address = (address_string or "").strip() or (f"address_id {address_id.strip()}" if address_id and
                                                  address_id.strip() else None)
    report = _report(settings, service_code, lat, long, address, text)
    event_id = intake.new_event_id()
    result = intake.ingest_manual(store, report, user.name, event_id)
    if media_url and result.case_id:
        case_id = result.case_id
        store.write(lambda conn: media.record_link(conn, case_id, f"manual:{user.name}", event_id, media_url,
                                                   settings.open311_media_fetch))
    notice = _notice(result, report, media_url, settings)
    return _reply(format_of(request.url.path), list[Created],
                  [{"service_request_id": result.case_id, "service_notice": notice}], "service_requests", "request")
