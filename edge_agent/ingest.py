"""Video sources -> `Frame`s: one reader per camera.

Two shapes, because live and replay want opposite things:
- `LiveReader` (rtsp://, http(s)://, a device index, or a file played at real speed) decodes on its
  own thread and keeps only the newest frame. A slow consumer sees fewer frames, never older ones,
  so latency cannot grow. A dead source is reopened with exponential backoff (capped at
  `backoff_max_s`); isolated undecodable frames are counted and skipped.
- `FileReplay` reads a file on the caller's thread, deterministically, yielding exactly the frames
  a given sampling rate needs (frames in between are grabbed, not converted), as fast as the
  consumer goes. Timestamps are `start_time + position`, so schedules can be tested on footage.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np

from edge_agent.types import Frame

log = logging.getLogger(__name__)

# RTSP over TCP: UDP loses packets on busy networks and smears H.264 frames.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")


class SourceKind(StrEnum):
    RTSP = "rtsp"
    HTTP = "http"
    FILE = "file"
    DEVICE = "device"


def source_kind(source: str | int) -> SourceKind:
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return SourceKind.DEVICE
    lowered = source.lower()
    if lowered.startswith(("rtsp://", "rtsps://")):
        return SourceKind.RTSP
    if lowered.startswith(("http://", "https://")):
        return SourceKind.HTTP
    return SourceKind.FILE


def shown_source(source: str | int) -> str:
    """The source without credentials (rtsp://user:pass@host -> rtsp://***@host) for logs."""
    text = str(source)
    if "@" in text and "://" in text:
        scheme, rest = text.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return text


def open_capture(source: str | int, timeout_s: float = 5.0) -> cv2.VideoCapture:
    """A VideoCapture with open/read timeouts so a dead network source cannot block for minutes."""
    if source_kind(source) == SourceKind.DEVICE:
        return cv2.VideoCapture(int(source))
    ms = int(timeout_s * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    return cv2.VideoCapture(str(source), cv2.CAP_FFMPEG, params)


def valid_image(image: np.ndarray | None) -> bool:
    return (image is not None and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
            and image.shape[0] >= 8 and image.shape[1] >= 8)


def backoff_delay(attempt: int, initial_s: float, max_s: float, jitter: float = 0.1) -> float:
    """Seconds to wait before reconnect `attempt` (1-based): doubling, capped, +-10% jitter so that
    many cameras behind one dead switch do not reconnect in lockstep."""
    base = min(max_s, initial_s * 2 ** max(0, attempt - 1))
    return base * (1 + random.uniform(-jitter, jitter))


@dataclass
class IngestStats:
    """Counters of one reader; written by its thread, read by metrics (ints/floats: atomic enough)."""

    frames_decoded: int = 0
    frames_dropped: int = 0  # decoded but replaced by a newer frame before anyone took it
    bad_reads: int = 0  # reads that gave no usable frame (garbled data, a dying source)
    reconnects: int = 0  # successful reopenings after the source was lost
    open_failures: int = 0
    online: bool = False
    last_error: str | None = None


class LiveReader:
    """Reads one camera on a daemon thread and keeps only its newest frame.

    `ts` of each frame is the wall clock at decode for live sources; for a file played at real
    speed it is `start_time` (default: when playback began) plus the position in the file.
    """

    def __init__(self, camera_id: str, source: str | int, *, start_time: float | None = None,
                 open_timeout_s: float = 5.0, backoff_initial_s: float = 0.5, backoff_max_s: float = 60.0,
                 max_read_failures: int = 5, loop_file: bool = False) -> None:
        self.camera_id = camera_id
        self.source = source
        self.kind = source_kind(source)
        self.start_time = start_time
        self.open_timeout_s = open_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_read_failures = max_read_failures
        self.loop_file = loop_file
        self.stats = IngestStats()
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._taken_index = -1
        self._index = 0
        self._finished = False
        self._at_file_end = False  # the last pass of a file source reached its end
        self._next_t0: float | None = None  # a looping file's next pass starts at this time
        self._thread = threading.Thread(target=self._run, name=f"ingest-{camera_id}", daemon=True)

    # Consumer side ---------------------------------------------------------------------------

    def start(self) -> LiveReader:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def finished(self) -> bool:
        """True once a non-looping file has been read to its end (live sources never finish)."""
        return self._finished and self._latest is None

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The newest frame not returned before, waiting up to `timeout` s; None if none came."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._latest is None and not self._stop.is_set() and not self._finished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame, self._latest = self._latest, None
            return frame

    def __enter__(self) -> LiveReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Reader thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        ever_connected = False
        while not self._stop.is_set():
            cap = open_capture(self.source, self.open_timeout_s)
            if not cap.isOpened():
                cap.release()
                self.stats.open_failures += 1
                self.stats.last_error = f"cannot open {self._shown_source()}"
                attempt += 1
                self._wait_backoff(attempt)
                continue
            if ever_connected:
                self.stats.reconnects += 1
                log.info("camera %s: reconnected to %s", self.camera_id, self._shown_source())
            ever_connected = True
            self.stats.online = True
            got_frames = self._read_until_lost(cap)
            cap.release()
            self.stats.online = False
            if self.kind == SourceKind.FILE and self._at_file_end:
                if self.loop_file:
                    continue
                self._finish()
                return
            if self._stop.is_set():
                break
            attempt = 1 if got_frames else attempt + 1  # a source that flaps still backs off
            log.warning("camera %s: lost %s (%s); retrying", self.camera_id, self._shown_source(),
                        self.stats.last_error)
            self._wait_backoff(attempt)
        self._finish()

    def _read_until_lost(self, cap: cv2.VideoCapture) -> bool:
        """Decode until the source fails `max_read_failures` times in a row; True if any frame came."""
        self._at_file_end = False
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        t0 = time.time() if self.start_time is None else self.start_time
        if self._next_t0 is not None:  # a looping file goes on where the last pass ended: time never goes back
            t0 = self._next_t0
        wall0 = time.monotonic()
        failures, got, pos = 0, False, 0
        while not self._stop.is_set():
            ok, image = cap.read()
            if not ok or not valid_image(image):
                is_file = self.kind == SourceKind.FILE
                if is_file and not ok and (count <= 0 or pos >= count - 1):
                    self._at_file_end = True
                    if fps > 0:
                        self._next_t0 = t0 + pos / fps
                    return got
                failures += 1
                pos += 1  # a garbled frame still took its slot in the file's timeline
                self.stats.bad_reads += 1
                if failures >= self.max_read_failures:
                    self.stats.last_error = "read failed" if not ok else "undecodable frames"
                    self._at_file_end = is_file  # a file that stops decoding is over, not flaky
                    if is_file and fps > 0:
                        self._next_t0 = t0 + pos / fps
                    return got
                continue
            failures, got = 0, True
            if self.kind == SourceKind.FILE and fps > 0:
                pos_s = pos / fps
                self._stop.wait(max(0.0, wall0 + pos_s - time.monotonic()))  # real speed
                ts = t0 + pos_s
            else:
                ts = time.time()
            pos += 1
            self._publish(image, ts)
        return got

    def _publish(self, image: np.ndarray, ts: float) -> None:
        self.stats.frames_decoded += 1
        with self._cond:
            if self._latest is not None:
                self.stats.frames_dropped += 1
            self._latest = Frame(self.camera_id, self._index, ts, image)
            self._index += 1
            self._cond.notify_all()

    def _wait_backoff(self, attempt: int) -> None:
        self._stop.wait(backoff_delay(attempt, self.backoff_initial_s, self.backoff_max_s))

    def _finish(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def _shown_source(self) -> str:
        return shown_source(self.source)


class FileReplay:
    """Deterministic replay of a video file, sampled at `sample_fps` (None: every frame).

    Yields the frame at or just after each sampling instant; `ts = start_time + index / fps`.
    Undecodable frames are skipped (counted in `stats.bad_reads`), never fatal.
    """

    def __init__(self, camera_id: str, path: str | Path, *, sample_fps: float | None = None,
                 start_time: float = 0.0, max_consecutive_failures: int = 50, end_s: float | None = None) -> None:
        self.camera_id = camera_id
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file {self.path} does not exist")
        cap = open_capture(str(self.path))
        if not cap.isOpened():
            raise ValueError(f"cannot decode video file {self.path}")
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        if not 0 < self.fps <= 1000:
            self.fps = 25.0  # containers without a rate: assume PAL rather than fail
        self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        cap.release()
        if end_s is not None:  # replay only the first `end_s` seconds (benchmarks)
            self.frame_count = min(self.frame_count or 10**9, max(1, round(end_s * self.fps)))
        self.sample_fps = sample_fps
        self.start_time = start_time
        self.max_consecutive_failures = max_consecutive_failures
        self.stats = IngestStats()

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.frame_count else 0.0

    def expected_samples(self) -> int:
        if not self.sample_fps or self.sample_fps >= self.fps:
            return self.frame_count
        last_s = (self.frame_count - 1) / self.fps
        return int(last_s * self.sample_fps + 1e-6) + 1

    def __iter__(self) -> Iterator[Frame]:
        cap = open_capture(str(self.path))
        period = 1.0 / self.sample_fps if self.sample_fps else 0.0
        next_due = 0.0
        eps = 0.5 / self.fps
        index, failures = 0, 0
        self.stats.online = True
        try:
            while failures < self.max_consecutive_failures:
                if self.frame_count and index >= self.frame_count:
                    break
                pos_s = index / self.fps
                wanted = pos_s + eps >= next_due
                ok = cap.grab()
                image = cap.retrieve()[1] if ok and wanted else None
                if not ok or (wanted and not valid_image(image)):
                    if not ok and self.frame_count and index >= self.frame_count - 1:
                        break  # the normal end
                    failures += 1
                    self.stats.bad_reads += 1
                    index += 1
                    continue
                failures = 0
                self.stats.frames_decoded += 1
                if wanted and image is not None:  # read whenever wanted
                    yield Frame(self.camera_id, index, self.start_time + pos_s, image)
                    while next_due <= pos_s + eps:
                        next_due += period if period else 1.0 / self.fps
                else:
                    self.stats.frames_dropped += 1
                index += 1
        finally:
            cap.release()
            self.stats.online = False
