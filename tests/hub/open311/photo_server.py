"""A real HTTP server on 127.0.0.1 serving photos and bad media for the media_url fetch tests."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np


def _jpeg() -> bytes:
    y, x = np.mgrid[0:48, 0:64]
    picture = np.dstack([x * 4, y * 5, (x + y) * 2]).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", picture)
    assert ok
    return bytes(data)


PHOTO = _jpeg()


class PhotoServer:
    """A real HTTP server on 127.0.0.1 with one path per case the fetcher must handle; counts the hits."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()  # /held.jpg answers only once this is set
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.hits[self.path] += 1
                if self.path == "/held.jpg":
                    outer.release.wait(30)
                routes: dict[str, tuple[int, str, bytes, dict[str, str]]] = {
                    "/photo.jpg": (200, "image/jpeg", PHOTO, {}),
                    "/held.jpg": (200, "image/jpeg", PHOTO, {}),
                    "/corrupt.jpg": (200, "image/jpeg", PHOTO[: len(PHOTO) // 2], {}),
                    "/page.html": (200, "text/html", b"<html>not a photo</html>", {}),
                    "/big.jpg": (200, "image/jpeg", PHOTO + b"\0" * 2_000_000, {"no-length": "1"}),
                    "/to-metadata": (302, "text/plain", b"", {"Location": "http://169.254.169.254/latest/meta-data"}),
                }
                status, kind, body, extra = routes.get(self.path, (404, "text/plain", b"no such photo", {}))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                if "Location" in extra:
                    self.send_header("Location", extra["Location"])
                if "no-length" not in extra:  # /big.jpg: no Content-Length, so only the streamed cap stops it
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the fetcher hung up at its cap
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
