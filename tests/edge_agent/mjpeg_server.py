"""A tiny HTTP MJPEG camera for ingest tests: `python mjpeg_server.py PORT [CORRUPT_EVERY [STAMP_OFFSET]]`.

Serves multipart/x-mixed-replace JPEGs at ~20 fps whose grey level is the frame counter; every
CORRUPT_EVERY-th part is a truncated JPEG with garbage appended, like a flaky encoder. With
STAMP_OFFSET each part carries `X-Timestamp: <capture time + STAMP_OFFSET>` (epoch s, as mjpg-streamer
sends it): a camera whose clock is STAMP_OFFSET s off.
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np


class MjpegHandler(BaseHTTPRequestHandler):
    corrupt_every = 0
    stamp_offset: float | None = None

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        i = 0
        try:
            while True:
                made = time.time()
                data = cv2.imencode(".jpg", np.full((120, 160, 3), i % 250, np.uint8))[1].tobytes()
                if self.corrupt_every and i % self.corrupt_every == self.corrupt_every - 1:
                    data = data[: len(data) // 3] + b"\x00garbage" * 20
                stamp = b"" if self.stamp_offset is None else b"X-Timestamp: %.6f\r\n" % (made + self.stamp_offset)
                head = b"--frame\r\nContent-Type: image/jpeg\r\n%sContent-Length: %d\r\n\r\n" % (stamp, len(data))
                self.wfile.write(head + data + b"\r\n")
                i += 1
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    MjpegHandler.corrupt_every = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    MjpegHandler.stamp_offset = float(sys.argv[3]) if len(sys.argv) > 3 else None
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), MjpegHandler)
    print("ready", flush=True)
    server.serve_forever()
