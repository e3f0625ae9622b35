"""HTTP MJPEG (multipart/x-mixed-replace) read part by part, so that each part's own headers are seen.

OpenCV's FFmpeg reads MJPEG too, but passes no per-part header on. Cameras and servers such as
mjpg-streamer stamp each part with the time its frame was captured (`X-Timestamp: 1796655661.798561`,
epoch seconds); such a frame carries that time (while `CameraClock` believes the camera's clock),
any other frame its arrival time. A server that answers with something other than a multipart stream
(or asks for an authentication this reader does not do) is left to OpenCV: `NotMultipart`.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPResponse
from urllib.parse import unquote, urlsplit, urlunsplit

MAX_PART_BYTES = 16 * 1024 * 1024  # a part without Content-Length is read up to the next boundary
MAX_HEADER_LINES = 32


class NotMultipart(Exception):
    """The source is not a multipart MJPEG stream this reader can take; OpenCV may."""


@dataclass(frozen=True, slots=True)
class Part:
    data: bytes
    stamp: float | None  # the part's X-Timestamp (epoch s), None without a readable one


def open_mjpeg(url: str, timeout_s: float) -> tuple[HTTPResponse, bytes]:
    """The response and its boundary; `timeout_s` bounds the connect and every later read (a read that
    waits longer raises `TimeoutError`). Credentials in the URL go as basic auth, never in the request
    line. Raises NotMultipart, or OSError when the host cannot be reached."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    request = urllib.request.Request(urlunsplit(parts._replace(netloc=netloc)))
    if "@" in parts.netloc:
        userinfo = unquote(parts.netloc.rsplit("@", 1)[0])
        request.add_header("Authorization", "Basic " + base64.b64encode(userinfo.encode()).decode())
    try:
        response: HTTPResponse = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise NotMultipart(f"HTTP {exc.code}") from None
    kind = response.headers.get("Content-Type", "")
    boundary = next((p.split("=", 1)[1].strip().strip('"') for p in kind.split(";")
                     if p.strip().lower().startswith("boundary=")), None)
    if not kind.lower().startswith("multipart/") or not boundary:
        response.close()
        raise NotMultipart(f"Content-Type {kind!r}")
    return response, boundary.encode()


def mjpeg_parts(response: HTTPResponse, boundary: bytes) -> Iterator[Part]:
    """The parts of a multipart stream until it ends; socket errors and timeouts propagate."""
    marker = b"--" + boundary.removeprefix(b"--")
    line = response.readline()
    while line:
        if line.rstrip() != marker:
            line = response.readline()  # the CRLF after a part's data, a preamble
            continue
        headers = _headers(response)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) <= MAX_PART_BYTES:
            data = response.read(int(length))
            line = response.readline()
        else:
            data, line = _until_boundary(response, marker)
        yield Part(data, _stamp(headers.get("x-timestamp")))


def _headers(response: HTTPResponse) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = response.readline().decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def _until_boundary(response: HTTPResponse, marker: bytes) -> tuple[bytes, bytes]:
    """A part without Content-Length: its bytes up to the next boundary line (returned too)."""
    chunks: list[bytes] = []
    size = 0
    while line := response.readline():
        if line.rstrip() == marker or size > MAX_PART_BYTES:
            break
        chunks.append(line)
        size += len(line)
    return b"".join(chunks).removesuffix(b"\r\n"), line


def _stamp(value: str | None) -> float | None:
    try:
        stamp = float(value) if value else None
    except ValueError:
        return None
    return stamp if stamp is not None and 1e9 < stamp < 1e10 else None  # epoch seconds, 2001-2286
