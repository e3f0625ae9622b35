"""The app's exception handlers: every error answered with a code from hub.errors (see its docstring).

Refusals raised by routes and services (hub.errors.Refused), the framework's own HTTP errors (unknown
path, wrong method), malformed requests (field errors, named by `params.field`) and store refusals all
leave here as `{"detail", "code", "params"}`; under /open311/ in GeoReport's shape instead.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub import errors
from hub.api import open311
from hub.open311.formats import format_of
from hub.storage.core import StoreError

_BY_STATUS = {404: errors.NOT_FOUND, 405: errors.METHOD_NOT_ALLOWED}


def json_safe_error(error: Any) -> Any:
    """A validation error as JSON: the offending input is echoed only when it can be written back as JSON
    (NaN, Infinity or bytes that are not text are shown by their repr)."""
    try:
        encoded = jsonable_encoder(error)
        json.dumps(encoded, allow_nan=False)
        return encoded
    except (TypeError, ValueError):
        safe = {k: v for k, v in error.items() if k in ("type", "loc", "msg")}
        safe["loc"] = [str(p) for p in safe.get("loc", ())]
        if "input" in error:
            safe["input"] = repr(error["input"])[:200]
        return safe


def _open311(request: Request) -> bool:
    return request.url.path.startswith("/open311/")


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.Refused)
    if _open311(request):
        return open311.georeport_error(exc.status_code, str(exc), format_of(request.url.path), exc.headers)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if _open311(request):
        return await open311.open311_http_error(request, exc)
    code = _BY_STATUS.get(exc.status_code, errors.HTTP_ERROR)
    params = {"status": exc.status_code} if code is errors.HTTP_ERROR else {}
    return JSONResponse({"detail": exc.detail, "code": code.name, "params": params}, status_code=exc.status_code,
                        headers=dict(exc.headers or {}) or None)


async def _invalid(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    items = [json_safe_error(e) for e in exc.errors()]
    return JSONResponse({"detail": items, "code": errors.INVALID.name, "params": errors.invalid_params(items)},
                        status_code=422)


async def _store(request: Request, exc: Exception) -> Response:
    if _open311(request):
        return open311.georeport_error(400, str(exc), format_of(request.url.path))
    return JSONResponse({"detail": str(exc), "code": errors.INVALID_REQUEST.name, "params": {}}, status_code=422)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(errors.Refused, _refused)
    app.add_exception_handler(StoreError, _store)
