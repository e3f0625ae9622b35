"""The reviewer web page: static files (no build step) served at `/`; all data comes from the REST API.

The page is public (it holds no data). People sign in with a password (a session cookie, HttpOnly and
SameSite, plus a CSRF token for changes: hub.auth.sessions); machines and temporary access may paste an
API token, which the page keeps in sessionStorage and sends as a Bearer header. Images and clips are
fetched with those credentials and shown as blob URLs, so evidence is never reachable without them.
The page's font is the project's shipped CJK font (protocol.fonts), served beside the page files.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from protocol.fonts import FONT_CONTENT_TYPE, FONT_PATH

WEB_DIR = Path(__file__).parent
WEB_SUFFIXES = (".html", ".js", ".css", ".svg", ".png", ".ico")
# Served at /<its file name>: style.css names it in @font-face.
mimetypes.add_type(FONT_CONTENT_TYPE, FONT_PATH.suffix)

# Scripts and styles only from the hub itself, images and clips from it or as blob URLs; no framing.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


ImageSources = Callable[[], list[str]]


def with_image_sources(headers: dict[str, str], sources: list[str]) -> dict[str, str]:
    """The headers with `sources` (origins, e.g. the map's tile service) allowed as image sources."""
    if not sources:
        return headers
    csp = headers["content-security-policy"].replace("img-src 'self'", "img-src 'self' " + " ".join(sources), 1)
    return {**headers, "content-security-policy": csp}


class WebFiles(StaticFiles):
    """StaticFiles with the page's security headers; revalidated on every load so updates show at once.
    `image_sources` names the other origins the page may show images from (the bureau's map tiles)."""

    def __init__(self, *args: Any, image_sources: ImageSources = list, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.image_sources = image_sources

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        security = with_image_sources(SECURITY_HEADERS, self.image_sources())

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() != "cache-control"]
                headers += [(k.encode(), v.encode()) for k, v in security.items()]
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_with_headers)

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path == FONT_PATH.name:
            return str(FONT_PATH), os.stat(FONT_PATH)
        return super().lookup_path(path)


class WebMount(Mount):
    """A mount at `/` that claims only the page's own files, so it never shadows an API route (not even
    one added after it: deny-by-default still answers those) and never serves this Python package."""

    def __init__(self, image_sources: ImageSources = list) -> None:
        super().__init__("/", app=WebFiles(directory=WEB_DIR, html=True, image_sources=image_sources), name="web")
        own = {f"/{p.name}" for p in WEB_DIR.iterdir() if p.suffix in WEB_SUFFIXES}
        self.paths = {"/", f"/{FONT_PATH.name}"} | own

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.FULL and scope.get("path") not in self.paths:
            return Match.NONE, {}
        return match, child


def web_mount(image_sources: ImageSources = list) -> WebMount:
    return WebMount(image_sources)
