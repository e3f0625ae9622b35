"""Video sources -> `Frame`s: one reader per camera.

Two shapes, because live and replay want opposite things:
- `LiveReader` (rtsp://, http(s)://, a device index, or a file played at real speed) decodes on its
  own thread and keeps only the newest frame. A slow consumer sees fewer frames, never older ones,
  so latency cannot grow. A frame's time is when it was made (for RTSP the camera's RTCP sender
  reports, else the stream position: `RtspClock`; `stats.clock` says which), and a frame
  older than `max_frame_age_s` is dropped, never handed on. No frame for `stall_s` marks the camera
  stalled (offline) and reconnects; a lost source is retried at once, then with a short jittered
  backoff (`ReconnectPolicy`); isolated undecodable frames are counted and skipped.
- `FileReplay` reads a file on the caller's thread, deterministically, yielding exactly the frames
  a given sampling rate needs (frames in between are grabbed, not converted), as fast as the
  consumer goes. Timestamps are `start_time + position`, so schedules can be tested on footage.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

# FFmpeg inside OpenCV logs one "Connection refused" line per failed open, straight to stderr; the
# reader logs one line per state change instead. Read when OpenCV first opens a capture; a user's
# own setting (to debug a camera) wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import av
import cv2
import numpy as np

from edge_agent.mjpeg import NotMultipart, mjpeg_parts, open_mjpeg
from edge_agent.stream_clock import CameraClock, ClockSource, RtspClock, StreamClock, prft_wall_s
from edge_agent.types import Frame

log = logging.getLogger(__name__)
av.logging.set_level(None)  # the same for PyAV's FFmpeg (RTSP): errors reach us as exceptions

CAPTURE_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
# Set by the user before start: used as is for every network source (our transport choice is then theirs).
_USER_CAPTURE_OPTIONS = os.environ.get(CAPTURE_OPTIONS_ENV)
_OPEN_LOCK = threading.Lock()  # the capture options travel through the (process-wide) environment
SECRET_QUERY_KEYS = ("pass", "pwd", "password", "token", "key", "auth", "secret", "sig")


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
    """The source without secrets, for logs and metrics: rtsp://user:pass@host -> rtsp://***@host,
    and the values of query parameters such as `password=` or `token=` -> ***."""
    text = str(source)
    if "://" not in text:
        return text
    scheme, rest = text.split("://", 1)
    authority, sep, tail = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    tail = _mask_query(tail)
    return f"{scheme}://{authority}{sep}{tail}"


def _mask_query(path: str) -> str:
    base, sep, query = path.partition("?")
    if not sep:
        return path
    parts = []
    for item in query.split("&"):
        name, eq, _value = item.partition("=")
        secret = eq and any(k in name.lower() for k in SECRET_QUERY_KEYS)
        parts.append(f"{name}=***" if secret else item)
    return f"{base}?{'&'.join(parts)}"


def capture_options(kind: SourceKind, rtsp_transport: str = "tcp") -> str:
    """FFmpeg options for a network source: RTSP over TCP by default (UDP loses packets on busy
    networks and smears H.264 frames); 0.1 s of stream analysis instead of FFmpeg's five: a reconnect
    shows video in about half a second, and the frames read during the analysis (which come out in a
    burst, stamped too late until the burst is over) are few. Cameras put the H.264 parameters in the
    SDP, so nothing needs the longer look."""
    if _USER_CAPTURE_OPTIONS is not None:
        return _USER_CAPTURE_OPTIONS
    options = "analyzeduration;100000"
    return f"rtsp_transport;{rtsp_transport}|{options}" if kind == SourceKind.RTSP else options


def open_capture(source: str | int, timeout_s: float = 5.0, *, read_timeout_s: float | None = None,
                 rtsp_transport: str = "tcp") -> cv2.VideoCapture:
    """A VideoCapture with open/read timeouts so a dead network source cannot block for minutes.

    OpenCV's warning after a failed open ("backend is generally available but can't be used to
    capture by name") is silenced: it blames the backend for what is a network problem, and the
    reader says what happened instead."""
    kind = source_kind(source)
    if kind == SourceKind.DEVICE:
        return cv2.VideoCapture(int(source))
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(timeout_s * 1000),
              cv2.CAP_PROP_READ_TIMEOUT_MSEC, int((read_timeout_s or timeout_s) * 1000)]
    with _OPEN_LOCK:
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        saved = os.environ.get(CAPTURE_OPTIONS_ENV)
        os.environ[CAPTURE_OPTIONS_ENV] = capture_options(kind, rtsp_transport)
        try:
            return cv2.VideoCapture(str(source), cv2.CAP_FFMPEG, params)
        finally:
            cv2.utils.logging.setLogLevel(level)
            if saved is None:
                os.environ.pop(CAPTURE_OPTIONS_ENV, None)
            else:
                os.environ[CAPTURE_OPTIONS_ENV] = saved


def valid_image(image: np.ndarray | None) -> bool:
    return (image is not None and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
            and image.shape[0] >= 8 and image.shape[1] >= 8)


def tcp_answer(source: str | int, timeout_s: float = 1.0) -> str | None:
    """How a network source's host answers a TCP connect: "listening", "refused" (the host is up,
    the service is not), "no answer"; None for files and devices."""
    if source_kind(source) not in (SourceKind.RTSP, SourceKind.HTTP):
        return None
    try:
        url = urlsplit(str(source))
        host = url.hostname or ""
        port = url.port or {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}.get(url.scheme.lower(), 554)
    except ValueError:
        return "no answer"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return "listening"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "no answer"


@dataclass(frozen=True)
class ReconnectPolicy:
    """When to retry a lost source. The first retry is immediate (most losses are a blip); then the
    delay doubles from `initial_s` with +-`jitter` (cameras behind one dead switch must not reconnect
    in lockstep), capped at `max_s` while the host answers on TCP (it will be back soon, and every
    second of wait is a second without video) and at `unreachable_max_s` when nothing answers."""

    initial_s: float = 0.25
    max_s: float = 1.0
    unreachable_max_s: float = 15.0
    jitter: float = 0.2

    def delay(self, attempt: int, host_answers: bool = True) -> float:
        """Seconds before retry `attempt` (1-based) after a loss."""
        if attempt <= 1:
            return 0.0
        cap = self.max_s if host_answers else self.unreachable_max_s
        base = min(cap, self.initial_s * 2 ** (attempt - 2))
        return base * (1 + random.uniform(-self.jitter, self.jitter))


class SourceState(StrEnum):
    CONNECTING = "connecting"
    ONLINE = "online"  # frames are flowing
    STALLED = "stalled"  # connected, but no frame for stall_s
    OFFLINE = "offline"  # lost or cannot be opened
    ENDED = "ended"  # a file source read to its end


@dataclass
class IngestStats:
    """Counters of one reader; written by its thread, read by metrics (ints/floats: atomic enough)."""

    frames_decoded: int = 0
    frames_dropped: int = 0  # decoded but replaced by a newer frame before anyone took it
    frames_stale: int = 0  # older than the camera's max_frame_age_s: never handed to the rules
    bad_reads: int = 0  # reads that gave no usable frame (garbled data, a dying source)
    reconnects: int = 0  # successful reopenings after the source was lost
    open_failures: int = 0
    stalls: int = 0  # times no frame came for stall_s
    state: SourceState = SourceState.CONNECTING
    last_error: str | None = None
    last_frame_wall: float | None = None  # epoch time the newest frame was decoded
    last_frame_ts: float | None = None  # epoch time the newest frame was made
    stall_s: float = 5.0
    live: bool = True  # frame times are wall-clock times (not a file's timeline)
    clock: ClockSource | None = None  # where frame times come from (None before the first frame)
    clock_skew_s: float | None = None  # RTSP with sender reports: our clock minus the camera's (+ least delay)

    @property
    def online(self) -> bool:
        """Frames flowing now: the reader says so and the newest frame is younger than stall_s (a
        reader blocked inside a read cannot say otherwise)."""
        if self.state != SourceState.ONLINE:
            return False
        return self.last_frame_wall is not None and time.time() - self.last_frame_wall < self.stall_s

    def frame_age_s(self, now: float | None = None) -> float | None:
        """How old the newest frame is (its frame time to now); None before the first or for files."""
        if self.last_frame_ts is None or not self.live:
            return None
        return max(0.0, (now or time.time()) - self.last_frame_ts)


@dataclass
class _Reads:
    """One connection's decodes so far."""

    reconnected: bool  # a connection after one that gave frames
    got: bool = False
    failures: int = 0  # undecodable frames in a row


class LiveReader:
    """Reads one camera on a daemon thread and keeps only its newest frame.

    `ts` of each frame is when it was made: for RTSP (read with PyAV, which hands on the RTCP sender
    reports) the camera's clock where it sends SRs and agrees with ours, else the stream's position
    anchored on the wall clock (`RtspClock`); for HTTP MJPEG (read part by part) each part's
    X-Timestamp where the server sends it and its clock agrees with ours, else the wall clock at
    decode, as for devices and other HTTP streams (OpenCV passes no per-frame time on); for a file
    played at real speed `start_time` (default: when playback began) plus the position in the file.
    `stats.clock` says which.
    """

    def __init__(self, camera_id: str, source: str | int, *, start_time: float | None = None,
                 open_timeout_s: float = 5.0, stall_s: float = 5.0, max_frame_age_s: float = 2.0,
                 reconnect: ReconnectPolicy | None = None, max_read_failures: int = 5, loop_file: bool = False,
                 rtsp_transport: str = "tcp") -> None:
        self.camera_id = camera_id
        self.source = source
        self.kind = source_kind(source)
        self.start_time = start_time
        self.open_timeout_s = open_timeout_s
        self.stall_s = stall_s
        self.max_frame_age_s = max_frame_age_s
        self.reconnect = reconnect or ReconnectPolicy()
        self.max_read_failures = max_read_failures
        self.loop_file = loop_file
        self.rtsp_transport = rtsp_transport
        self.stats = IngestStats(stall_s=stall_s, live=self.kind != SourceKind.FILE)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._index = 0
        self._finished = False
        self._at_file_end = False  # the last pass of a file source reached its end
        self._next_t0: float | None = None  # a looping file's next pass starts at this time
        self._down_since: float | None = None  # monotonic time the source was lost (for the log)
        self._host_answers = True  # the last failed open found the host answering on TCP
        self._multipart = True  # an HTTP source is read as multipart MJPEG until it proves not to be one
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
        """The newest frame not returned before, waiting up to `timeout` s; None if none came.

        A live frame that grew older than `max_frame_age_s` while it waited (the consumer was
        paused or slow) is dropped here too: the rules never see stale video as current."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self._latest is None and not self._stop.is_set() and not self._finished:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._cond.wait(remaining)
                frame, self._latest = self._latest, None
                if frame is None or not self._stale(frame.ts):
                    return frame
                self.stats.frames_stale += 1

    def __enter__(self) -> LiveReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _stale(self, ts: float) -> bool:
        return self.stats.live and time.time() - ts > self.max_frame_age_s

    # Reader thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        ever_connected = False
        while not self._stop.is_set():
            if attempt:
                self._wait_before_retry(attempt)
                if self._stop.is_set():
                    break
            if self.kind == SourceKind.RTSP:
                got_frames = self._read_rtsp(reconnected=ever_connected)
            elif self.kind == SourceKind.HTTP and self._multipart:
                got_frames = self._read_mjpeg(reconnected=ever_connected)
            else:
                got_frames = self._read_opencv(reconnected=ever_connected)
            if got_frames is None:
                self._open_failed()
                attempt += 1
                continue
            ever_connected = ever_connected or got_frames
            if self.kind == SourceKind.FILE and self._at_file_end:
                if self.loop_file:
                    continue
                self.stats.state = SourceState.ENDED
                self._finish()
                return
            if self._stop.is_set():
                break
            self._lost()
            attempt = 1 if got_frames else attempt + 1  # at once after a loss; backs off while no frame comes
        self._finish()

    def _open_failed(self) -> None:
        self.stats.open_failures += 1
        answer = tcp_answer(self.source)
        why = {"refused": "connection refused", "no answer": "no answer",
               "listening": "the host answers but gives no video: check the path, credentials and codec",
               None: "not readable"}[answer]
        error = f"cannot open {self._shown_source()} ({why})"
        if error != self.stats.last_error or self.stats.state != SourceState.OFFLINE:
            log.warning("camera %s: %s; retrying", self.camera_id, error)
        self.stats.last_error = error
        self.stats.state = SourceState.OFFLINE
        self._host_answers = answer != "no answer"

    def _lost(self) -> None:
        if self.stats.state == SourceState.STALLED:
            return  # said when it stalled
        self.stats.state = SourceState.OFFLINE
        self._down_since = self._down_since or time.monotonic()
        log.warning("camera %s: lost %s (%s); reconnecting", self.camera_id, self._shown_source(),
                    self.stats.last_error)

    def _stalled(self, silent_s: float) -> None:
        self.stats.stalls += 1
        self.stats.state = SourceState.STALLED
        self.stats.last_error = f"stalled: no frame for {silent_s:.1f} s"
        self._down_since = self._down_since or time.monotonic()
        log.warning("camera %s: stalled, no frame for %.1f s; reconnecting to %s", self.camera_id, silent_s,
                    self._shown_source())

    def _frames_flow(self, reconnected: bool) -> None:
        """The first good frame of a connection: online again, the old error is history."""
        if reconnected:
            self.stats.reconnects += 1
        if self._down_since is not None or reconnected:
            down = time.monotonic() - (self._down_since or time.monotonic())
            log.info("camera %s: frames flow again from %s after %.1f s", self.camera_id, self._shown_source(),
                     down)
        self._down_since = None
        self.stats.last_error = None
        self.stats.state = SourceState.ONLINE

    def _read_rtsp(self, *, reconnected: bool) -> bool | None:
        """Decode an RTSP source with PyAV until it stalls or fails; None if it could not be opened,
        else whether any frame came. A read blocks at most stall_s (PyAV's read timeout)."""
        try:
            container = open_rtsp(self.source, self.open_timeout_s, self.stall_s, self.rtsp_transport)
        except (av.error.FFmpegError, OSError) as exc:
            log.debug("camera %s: open failed: %s", self.camera_id, error_reason(exc))
            return None
        clock = RtspClock(StreamClock(late_s=self.max_frame_age_s))
        reads = _Reads(reconnected)
        last_good = time.monotonic()
        try:
            for image, pts_s, sr_wall in rtsp_frames(container):
                if self._stop.is_set():
                    break
                silent_s = time.monotonic() - last_good
                if silent_s >= self.stall_s:
                    # what came after the read timed out is the parser's last frame, flushed: nothing
                    # came for stall_s, reconnect rather than wait on
                    self._stalled(silent_s)
                    return reads.got
                good = self._count(reads, image)
                if good is None:
                    return reads.got
                if image is None or not good:
                    continue
                last_good, now = time.monotonic(), time.time()
                ts = clock.frame_time(pts_s, sr_wall, now)
                self.stats.clock, self.stats.clock_skew_s = clock.source, clock.skew_s
                self._take(image, ts, now)
        except av.error.ExitError:  # PyAV's read timeout: nothing came for stall_s
            self._stalled(time.monotonic() - last_good)
        except (av.error.FFmpegError, OSError) as exc:
            self.stats.last_error = f"read failed: {error_reason(exc)}"
        finally:
            container.close()
        return self._ended(reads)

    def _read_opencv(self, *, reconnected: bool) -> bool | None:
        """A file, a device, or HTTP that is not multipart MJPEG, through OpenCV; None if it did not open."""
        cap = open_capture(self.source, self.open_timeout_s, read_timeout_s=self.stall_s,
                           rtsp_transport=self.rtsp_transport)
        try:
            return self._read_until_lost(cap, reconnected=reconnected) if cap.isOpened() else None
        finally:
            cap.release()

    def _read_mjpeg(self, *, reconnected: bool) -> bool | None:
        """HTTP multipart MJPEG part by part (`edge_agent.mjpeg`): a part stamped X-Timestamp carries
        that time while `CameraClock` believes the camera's clock, any other its arrival time. None if
        it could not be opened; a source that is not multipart goes to OpenCV from now on."""
        try:
            response, boundary = open_mjpeg(str(self.source), min(self.open_timeout_s, self.stall_s))
        except NotMultipart as exc:
            log.info("camera %s: %s is not multipart MJPEG (%s): read through OpenCV", self.camera_id,
                     self._shown_source(), exc)
            self._multipart = False
            return self._read_opencv(reconnected=reconnected)
        except (OSError, ValueError) as exc:
            log.debug("camera %s: open failed: %s", self.camera_id, error_reason(exc))
            return None
        clock = CameraClock(late_s=self.max_frame_age_s)
        reads = _Reads(reconnected)
        try:
            for part in mjpeg_parts(response, boundary):
                if self._stop.is_set():
                    break
                image = cv2.imdecode(np.frombuffer(part.data, np.uint8), cv2.IMREAD_COLOR) if part.data else None
                image = image if valid_image(image) else None
                good = self._count(reads, image)
                if good is None:
                    return reads.got
                if image is None or not good:
                    continue
                now = time.time()
                stamped = part.stamp is not None and clock.believe(part.stamp, now)
                self.stats.clock = ClockSource.PART_HEADER if stamped else ClockSource.DECODE
                self.stats.clock_skew_s = clock.skew_s
                self._take(image, part.stamp if stamped and part.stamp is not None else now, now)
        except TimeoutError:  # nothing came for stall_s
            self._stalled(self.stall_s)
        except OSError as exc:
            self.stats.last_error = f"read failed: {error_reason(exc)}"
        finally:
            response.close()
        return self._ended(reads)

    def _count(self, reads: _Reads, image: np.ndarray | None) -> bool | None:
        """Counts a decode: True for a good frame (the connection's first says frames flow), False
        for an undecodable one to skip, None once `max_read_failures` came in a row (give up)."""
        if image is None:
            reads.failures += 1
            self.stats.bad_reads += 1
            if reads.failures >= self.max_read_failures:
                self.stats.last_error = "undecodable frames"
                return None
            return False
        reads.failures = 0
        if not reads.got:
            reads.got = True
            self._frames_flow(reads.reconnected)
        return True

    def _ended(self, reads: _Reads) -> bool:
        """After a connection: whether any frame came; a stream that just ended says so."""
        if not self._stop.is_set() and self.stats.state == SourceState.ONLINE and not self.stats.last_error:
            self.stats.last_error = "the stream ended"
        return reads.got

    def _take(self, image: np.ndarray, ts: float, now: float) -> None:
        """A decoded live frame made at `ts`: handed on unless it is already stale. Times never go
        back within a reader (a switch of clock, e.g. at a stream's first sender report, can step
        back by the camera's skew, at most max_skew_s): the rules measure time by differences."""
        self.stats.last_frame_wall = now
        if self.stats.last_frame_ts is not None and ts < self.stats.last_frame_ts:
            ts = self.stats.last_frame_ts + 1e-3
        if self._stale(ts):
            self.stats.frames_stale += 1  # old video from a buffer: never current
            return
        self._publish(image, ts)

    def _read_until_lost(self, cap: cv2.VideoCapture, *, reconnected: bool) -> bool:
        """Decode until the source stalls or fails `max_read_failures` times in a row; True if any frame came."""
        if self.kind == SourceKind.FILE:
            return self._read_file(cap)
        self.stats.clock = ClockSource.DECODE  # OpenCV passes no per-frame time on: arrival is all there is
        failures, got = 0, False
        last_good = time.monotonic()
        while not self._stop.is_set():
            ok, image = cap.read()
            now = time.time()
            silent_s = time.monotonic() - last_good
            if silent_s >= self.stall_s:
                # Whatever the read gave in the end (FFmpeg hands out the decoder's last frame when
                # its read times out), nothing came for stall_s: reconnect rather than wait on.
                self._stalled(silent_s)
                return got
            if not ok or not valid_image(image):
                failures += 1
                self.stats.bad_reads += 1
                if failures >= self.max_read_failures:
                    self.stats.last_error = "read failed" if not ok else "undecodable frames"
                    return got
                continue
            failures = 0
            last_good = time.monotonic()
            if not got:
                got = True
                self._frames_flow(reconnected)
            self.stats.last_frame_wall = now
            self._publish(image, now)
        return got

    def _read_file(self, cap: cv2.VideoCapture) -> bool:
        """A file at real speed; frame times on its own timeline."""
        self._at_file_end = False
        self.stats.clock = ClockSource.FILE
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
                if not ok and (count <= 0 or pos >= count - 1):
                    self._at_file_end = True
                    if fps > 0:
                        self._next_t0 = t0 + pos / fps
                    return got
                failures += 1
                pos += 1  # a garbled frame still took its slot in the file's timeline
                self.stats.bad_reads += 1
                if failures >= self.max_read_failures:
                    self.stats.last_error = "read failed" if not ok else "undecodable frames"
                    self._at_file_end = True  # a file that stops decoding is over, not flaky
                    if fps > 0:
                        self._next_t0 = t0 + pos / fps
                    return got
                continue
            failures = 0
            if not got:
                got = True
                self.stats.state = SourceState.ONLINE
            pos_s = pos / fps if fps > 0 else 0.0
            if fps > 0:
                self._stop.wait(max(0.0, wall0 + pos_s - time.monotonic()))  # real speed
                ts = t0 + pos_s
            else:
                ts = time.time()
            pos += 1
            self.stats.last_frame_wall = time.time()
            self._publish(image, ts)
        return got

    def _publish(self, image: np.ndarray, ts: float) -> None:
        self.stats.frames_decoded += 1
        self.stats.last_frame_ts = ts
        with self._cond:
            if self._latest is not None:
                self.stats.frames_dropped += 1
            self._latest = Frame(self.camera_id, self._index, ts, image)
            self._index += 1
            self._cond.notify_all()

    def _wait_before_retry(self, attempt: int) -> None:
        self._stop.wait(self.reconnect.delay(attempt, self._host_answers))

    def _finish(self) -> None:
        if self.stats.state != SourceState.ENDED:
            self.stats.state = SourceState.OFFLINE
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def _shown_source(self) -> str:
        return shown_source(self.source)


def error_reason(exc: BaseException) -> str:
    """An FFmpeg error without the URL PyAV appends to it (it would carry the credentials)."""
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__) or "error"


def sender_report_wall(packet: av.Packet) -> float | None:
    """The wall time FFmpeg's RTP demuxer mapped this packet to from the camera's RTCP sender
    reports (its PRFT side data), or None before the first SR / for sources without them."""
    return prft_wall_s(bytes(packet.get_sidedata("prft"))) if packet.has_sidedata("prft") else None


def open_rtsp(source: str | int, open_timeout_s: float, read_timeout_s: float,
              transport: str = "tcp") -> av.container.InputContainer:
    """An RTSP source opened with PyAV: over `transport`, with 0.1 s of stream analysis (see
    `capture_options`), an open timeout and a read timeout (a read that blocks longer raises
    `av.error.ExitError`)."""
    options = {"rtsp_transport": transport, "analyzeduration": "100000"}
    return av.open(str(source), options=options, timeout=(open_timeout_s, read_timeout_s))


def rtsp_frames(container: av.container.InputContainer) -> Iterator[tuple[np.ndarray | None, float, float | None]]:
    """(BGR image or None if undecodable, stream position s, sender-report wall time or None) per frame
    of the first video stream; PyAV/FFmpeg errors propagate."""
    stream = container.streams.video[0]
    tb = float(stream.time_base or 0) or 1 / 90000
    first: int | None = None
    sr_of: dict[int, float | None] = {}  # packet pts -> its SR wall time, until its frame comes out
    for packet in container.demux(stream):
        if packet.size == 0 or packet.pts is None:
            continue
        first = packet.pts if first is None else first
        sr_of[packet.pts] = sender_report_wall(packet)
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            yield None, (packet.pts - first) * tb, None
            continue
        for frame in frames:
            pts = frame.pts if frame.pts is not None else packet.pts
            image = frame.to_ndarray(format="bgr24")
            yield (image if valid_image(image) else None), (pts - first) * tb, sr_of.pop(pts, None)
        if len(sr_of) > 64:  # frames the decoder never gave back
            for key in sorted(sr_of)[:-32]:
                del sr_of[key]


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
        self.stats = IngestStats(live=False)

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
        self.stats.state = SourceState.ONLINE
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
                    self.stats.last_frame_wall = time.time()
                    self.stats.last_frame_ts = self.start_time + pos_s
                    yield Frame(self.camera_id, index, self.start_time + pos_s, image)
                    while next_due <= pos_s + eps:
                        next_due += period if period else 1.0 / self.fps
                else:
                    self.stats.frames_dropped += 1
                index += 1
        finally:
            cap.release()
            self.stats.state = SourceState.ENDED
