"""The real RTSP camera of the live-source tests: `tests/rtsp_server.py` (GStreamer's gst-rtsp-server
under Debian's /usr/bin/python3) as a process a test can start, stall (SIGSTOP), resume and kill, and
`content_time`, which reads the wall-clock time the server burned into a frame; `wait_for` polls."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
MARKER = (1, 0, 1, 0)
TIME_BITS = 44


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gst_rtsp_missing() -> str | None:
    """Why the RTSP server cannot run here, or None."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
             "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
             "missing = [e for e in ('x264enc', 'avdec_msmpeg4', 'clockoverlay', 'rtph264pay', 'appsrc')"
             " if Gst.ElementFactory.find(e) is None]; print(' '.join(missing))")
    done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return "python3-gi / gir1.2-gst-rtsp-server-1.0 are not installed (setup.sh installs them as root)"
    if done.stdout.strip():
        return f"GStreamer elements missing: {done.stdout.strip()} (gstreamer1.0-plugins-* / gstreamer1.0-libav)"
    return None


def require_gst_rtsp() -> None:
    reason = gst_rtsp_missing()
    if reason:
        pytest.skip(f"real RTSP server unavailable: {reason}")


class RtspCamera:
    """gst-rtsp-server serving `video` in a loop on a fixed port, so a restart comes back at the same URL."""

    def __init__(self, video: Path, port: int | None = None, user: str | None = None, password: str = "",
                 server_args: tuple[str, ...] = ()) -> None:
        self.video, self.port = video, port or free_port()
        self.user, self.password = user, password
        self.server_args = server_args  # e.g. ("--sr-offset", "30") or ("--no-rtcp",): see rtsp_server.py
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        creds = f"{self.user}:{self.password}@" if self.user else ""
        return f"rtsp://{creds}127.0.0.1:{self.port}/cam"

    def start(self, timeout: float = 30.0) -> float:
        """Start the server; returns the wall time it listened."""
        args = [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), "--video", str(self.video)]
        if self.user:
            args += ["--user", self.user, "--password", self.password]
        args += self.server_args
        deadline = time.monotonic() + timeout
        while True:  # the port of a killed server can take a moment to free
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if line.startswith("ready"):
                return time.time()
            self.proc.wait(5)
            if time.monotonic() > deadline:
                raise AssertionError(f"RTSP server did not start: {line}{self.proc.stdout.read()}")
            time.sleep(0.2)

    def stall(self) -> None:
        """Freeze the server: its connections stay open, no frame comes (a hung camera)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> RtspCamera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def wait_for(predicate: Callable[[], object], timeout: float) -> bool:
    """Polls `predicate` until it is true (True) or `timeout` s passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def content_time(image: np.ndarray) -> float | None:
    """The epoch time the server made this frame, read from the block strip along its top edge
    (see rtsp_server.py); None if the strip is not there or not readable."""
    width = image.shape[1]
    block = width // (len(MARKER) + TIME_BITS)
    if block < 4 or image.shape[0] < block:
        return None
    strip = image[block // 4: block - block // 4].astype(np.float32)
    if strip.ndim == 3:
        strip = strip.mean(axis=2)
    bits = []
    for i in range(len(MARKER) + TIME_BITS):
        cell = strip[:, i * block + block // 4: (i + 1) * block - block // 4]
        bits.append(int(cell.mean() > 128))
    if tuple(bits[: len(MARKER)]) != MARKER:
        return None
    ms = 0
    for bit in bits[len(MARKER):]:
        ms = ms * 2 + bit
    return ms / 1000.0
