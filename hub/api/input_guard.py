"""Refuse values no database stores alike before any route sees them (ASGI middleware).

PostgreSQL refuses a NUL byte in text (SQLite keeps it), neither stores a lone UTF-16 surrogate as valid
UTF-8, and JSON's NaN / Infinity / numbers beyond a double are not JSON to any other parser. So every
request is checked at the API's edge, the same way on both databases: the path, the query string, form
fields and every string and number of a JSON body. A refused request gets 422 with code `invalid` (hub.errors;
400 under /open311/, in the GeoReport shape) whose detail names where the value was; nothing reaches a
route or the database.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from hub.errors import INVALID, invalid_params
from hub.open311.formats import MEDIA_TYPES, error_body, format_of

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# JSON bodies are read whole to be checked; the API's JSON bodies are small (uploads are multipart).
MAX_CHECKED_BODY = 4 * 1024 * 1024


class BadInput(ValueError):
    def __init__(self, loc: tuple[str | int, ...], msg: str, kind: str) -> None:
        super().__init__(msg)
        self.loc, self.msg, self.kind = loc, msg, kind


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored on every database, or None."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000)"
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        return "contains a lone UTF-16 surrogate (not valid Unicode text)"
    return None


def _check_text(text: str, loc: tuple[str | int, ...]) -> None:
    problem = text_problem(text)
    if problem:
        raise BadInput(loc, f"text {problem}", "string_not_storable")


class _NotFinite(str):
    """Stands in for NaN, Infinity or an overflowing number while parsing, so the walk can say where it was."""


def _float_or_flag(text: str) -> float | _NotFinite:
    value = float(text)
    return value if math.isfinite(value) else _NotFinite(text)


def _walk(value: Any, loc: tuple[str | int, ...]) -> None:
    if isinstance(value, _NotFinite):
        raise BadInput(loc, f"{str(value)[:40]} is not a finite number (NaN, Infinity and numbers beyond a "
                            "64-bit float are refused)", "number_not_finite")
    if isinstance(value, str):
        _check_text(value, loc)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, (*loc, key))
            _walk(item, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, (*loc, i))
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
        raise BadInput(loc, "integer out of range (beyond 64 bits)", "int_out_of_range")


def check_json(body: bytes) -> None:
    """Raise BadInput for NaN/Infinity, overflowing numbers, NUL or lone surrogates anywhere in `body`.
    Malformed JSON is left to the route's own parser (its error names the position)."""
    try:
        value = json.loads(body, parse_constant=_NotFinite, parse_float=_float_or_flag)
    except ValueError:
        return
    _walk(value, ("body",))


def check_form(body: bytes) -> None:
    for key, item in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
        _check_text(key, ("body", key))
        _check_text(item, ("body", key))


def check_query(query: bytes) -> None:
    try:
        pairs = parse_qsl(query.decode("utf-8", "strict"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise BadInput(("query",), "query string is not valid UTF-8 once decoded", "string_not_storable") from exc
    for key, item in pairs:
        _check_text(key, ("query", key))
        _check_text(item, ("query", key))


def _body_kind(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            mime = value.split(b";", 1)[0].strip().lower()
            if mime == b"application/json" or mime.endswith(b"+json"):
                return "json"
            if mime == b"application/x-www-form-urlencoded":
                return "form"
    return ""


def _error_body(exc: BadInput, path: str) -> tuple[int, bytes, bytes]:
    """Status, body and content type of the refusal (GeoReport's shape and format under /open311/)."""
    if path.startswith("/open311/"):
        where = ".".join(str(p) for p in exc.loc[1:])
        fmt = format_of(path)
        body = error_body(400, f"{where}: {exc.msg}" if where else exc.msg, fmt)
        return 400, body, MEDIA_TYPES[fmt].encode()
    detail = [{"type": exc.kind, "loc": list(exc.loc), "msg": exc.msg}]
    refusal = {"detail": detail, "code": INVALID.name, "params": invalid_params(detail)}
    return 422, json.dumps(refusal, ensure_ascii=False).encode(), b"application/json"


class InputGuard:
    """The middleware; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            path = scope.get("path", "")
            _check_text(path, ("path",))
            check_query(scope.get("query_string", b""))
            kind = _body_kind(scope)
            if kind:
                body, receive = await _buffered(receive)
                if len(body) <= MAX_CHECKED_BODY:
                    (check_json if kind == "json" else check_form)(body)
        except BadInput as exc:
            status, payload, content_type = _error_body(exc, scope.get("path", ""))
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", content_type),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
            return
        await self.app(scope, receive, send)


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a `receive` that replays it to the app."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
