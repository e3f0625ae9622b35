"""A tiny HTTP MJPEG camera for ingest tests: `python mjpeg_server.py PORT [CORRUPT_EVERY]`.

Serves multipart/x-mixed-replace JPEGs at ~20 fps whose grey level is the frame counter; every
CORRUPT_EVERY-th part is a truncated JPEG with garbage appended, like a flaky encoder.
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np


class MjpegHandler(BaseHTTPRequestHandler):
    corrupt_every = 0

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        i = 0
        try:
            while True:
                data = cv2.imencode(".jpg", np.full((120, 160, 3), i % 250, np.uint8))[1].tobytes()
                if self.corrupt_every and i % self.corrupt_every == self.corrupt_every - 1:
                    data = data[: len(data) // 3] + b"\x00garbage" * 20
                head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
                self.wfile.write(head + data + b"\r\n")
                i += 1
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    MjpegHandler.corrupt_every = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), MjpegHandler)
    print("ready", flush=True)
    server.serve_forever()
