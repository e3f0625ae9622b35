"""A camera's two streams at the packet level (PyAV/FFmpeg).

Cameras send a low-resolution sub-stream beside the main one. Detection, tracking and rules run on
the sub-stream; the main stream is only needed for evidence, at the few moments a rule fires. So:

- the detect stream is decoded (every frame the codec needs; non-reference frames skipped when the
  sampling rate allows), but only the frames the pipeline samples are converted to BGR;
- the main stream is only demuxed: its compressed packets wait in a `PacketRing` (the last seconds,
  from a keyframe on), and `decode_at` turns the few that evidence needs into images, on the
  evidence worker's thread.

Both streams' packets carry times on the camera's clock (`start_time` + position for files), so a
detect frame and the main-stream frame shown for it are matched by time, and boxes by scale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np

from edge_agent.ingest import (
    IngestStats,
    ReconnectPolicy,
    SourceKind,
    SourceState,
    error_reason,
    open_rtsp,
    sender_report_wall,
    shown_source,
    source_kind,
    tcp_answer,
)
from edge_agent.stream_clock import ClockSource, RtspClock, StreamClock
from edge_agent.types import Frame

log = logging.getLogger(__name__)

av.logging.set_level(None)  # FFmpeg's own log is off: errors reach us as exceptions, nothing per frame


@dataclass(frozen=True)
class StreamInfo:
    """What a decoder needs to decode a stream's packets later, anywhere."""

    codec: str
    extradata: bytes | None
    width: int
    height: int

    @classmethod
    def of(cls, stream: av.video.stream.VideoStream) -> StreamInfo:
        ctx = stream.codec_context
        return cls(ctx.name, bytes(ctx.extradata) if ctx.extradata else None, ctx.width, ctx.height)

    def decoder(self) -> av.CodecContext:
        ctx = av.CodecContext.create(self.codec, "r")
        if self.extradata:
            ctx.extradata = self.extradata
        ctx.width, ctx.height = self.width, self.height
        return ctx


@dataclass(frozen=True, slots=True)
class Packet:
    """One compressed frame: its presentation time on the camera's clock and its bytes."""

    ts: float
    data: bytes
    keyframe: bool


class PacketRing:
    """The main stream's recent packets, from a keyframe at least `keep_s` before the newest one.

    Thread-safe: a reader thread pushes, the pipeline takes spans for evidence. A new `info` (a
    reconnect, another resolution) empties it: old packets would not decode with the new stream.
    """

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self.info: StreamInfo | None = None
        self._packets: deque[Packet] = deque()
        self._lock = threading.Lock()

    def reset(self, info: StreamInfo) -> None:
        with self._lock:
            if info != self.info:
                self._packets.clear()
            self.info = info

    def push(self, packet: Packet) -> None:
        with self._lock:
            if not self._packets and not packet.keyframe:
                return  # undecodable without the keyframe before it
            self._packets.append(packet)
            self._trim(packet.ts - self.keep_s)

    def _trim(self, oldest_needed: float) -> None:
        """Drop whole GOPs while the next keyframe is still at or before `oldest_needed`."""
        while True:
            nxt = next((i for i, p in enumerate(self._packets) if i and p.keyframe), None)
            if nxt is None or self._packets[nxt].ts > oldest_needed:
                return
            for _ in range(nxt):
                self._packets.popleft()

    @property
    def newest_ts(self) -> float | None:
        with self._lock:
            return self._packets[-1].ts if self._packets else None

    def since(self, ts: float) -> tuple[StreamInfo | None, list[Packet]]:
        """The stream info and the packets from the last keyframe at or before `ts` to the newest."""
        with self._lock:
            packets = list(self._packets)
            info = self.info
        start = 0
        for i, p in enumerate(packets):
            if p.keyframe and p.ts <= ts + 1e-6:
                start = i
            elif p.ts > ts:
                break
        return info, packets[start:]

    def __len__(self) -> int:
        return len(self._packets)


def decode_at(info: StreamInfo, packets: Sequence[Packet], times: Sequence[float]) -> list[np.ndarray]:
    """BGR images of the frames shown at `times`: for each, the last frame at or before it (the
    first one for earlier times). Decodes `packets` in order up to the latest time needed and
    converts only the frames picked. Empty when nothing decodes."""
    if not packets or not times:
        return []
    ctx = info.decoder()
    last_needed = max(times)
    picked: dict[int, av.VideoFrame] = {}  # index into `times` -> frame
    order = range(len(times))

    def take(frame: av.VideoFrame) -> bool:
        """Assign `frame` to every wanted time it covers; True once past the last one."""
        ts = packets[frame.pts].ts if frame.pts is not None and 0 <= frame.pts < len(packets) else None
        if ts is None:
            return False
        for i in order:
            if ts <= times[i] + 1e-6 or i not in picked:  # the latest frame at or before, else the first
                picked[i] = frame
        return ts > last_needed + 1e-6

    done = False
    for index, p in enumerate(packets):
        packet = av.Packet(p.data)
        packet.pts = packet.dts = index
        try:
            frames = ctx.decode(packet)
        except av.error.FFmpegError:
            continue  # a damaged packet: the frames around it still count
        for frame in frames:
            done = take(frame) or done
        if done:
            break
    if not done:
        try:
            for frame in ctx.decode(None):
                take(frame)
        except av.error.FFmpegError:
            pass
    if len(picked) < len(times):
        return []
    cache: dict[int, np.ndarray] = {}
    return [cache.setdefault(id(picked[i]), picked[i].to_ndarray(format="bgr24")) for i in range(len(times))]


# --- reading files (replays, benchmarks) ---------------------------------------------------------


def _open_video(path: str | Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise ValueError(f"cannot open video {path}: {exc}") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path} has no video stream")
    return container, container.streams.video[0]


class DetectStream:
    """A video file read as the pipeline's detect stream: yields `Frame`s sampled at `sample_fps`.

    Every frame is decoded (a P frame needs the one before), except non-reference frames when
    `skip_nonref` and the sampling rate is at most half the stream's; only sampled frames are
    converted to BGR. `ts = start_time + presentation time`. With `main`, the main stream's packets
    up to each frame's time are put in `main.ring` before the frame is yielded.
    """

    def __init__(self, camera_id: str, path: str | Path, *, sample_fps: float, start_time: float = 0.0,
                 end_s: float | None = None, skip_nonref: bool = True, main: MainStreamFile | None = None) -> None:
        self.camera_id = camera_id
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file {self.path} does not exist")
        container, stream = _open_video(self.path)
        self.fps = float(stream.average_rate or 25)
        frames = stream.frames or 0
        duration = float(container.duration or 0) / av.time_base if container.duration else frames / self.fps
        container.close()
        self.duration_s = min(duration, end_s) if end_s is not None else duration
        self.sample_fps = sample_fps
        self.start_time = start_time
        self.end_s = end_s
        self.skip_nonref = skip_nonref and sample_fps * 2 <= self.fps
        self.main = main
        self.stats = IngestStats(live=False)
        # set by the pipeline while the camera is still (`motion.keyframes_when_still_s`): only keyframes
        # are decoded until it is cleared, and full decoding resumes at the next keyframe
        self.keyframes_only = threading.Event()

    def _decoded(self, container: av.container.InputContainer,
                 stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
        """The stream's frames, keyframes only while `keyframes_only` is set."""
        normal: Literal["NONREF", "DEFAULT"] = "NONREF" if self.skip_nonref else "DEFAULT"
        stream.codec_context.skip_frame = normal
        key_only = False
        for packet in container.demux(stream):
            wanted = self.keyframes_only.is_set()
            if wanted != key_only and (wanted or packet.is_keyframe):  # a P frame needs the frames skipped
                key_only = wanted
                stream.codec_context.skip_frame = "NONKEY" if key_only else normal
            yield from packet.decode()

    def __iter__(self) -> Iterator[Frame]:
        container, stream = _open_video(self.path)
        stream.thread_type = "NONE"  # many streams share the cores: one thread each decodes best
        tb = float(stream.time_base)
        first_pts: int | None = None
        period, next_due, index = 1.0 / self.sample_fps, 0.0, 0
        self.stats.state = SourceState.ONLINE
        try:
            for frame in self._decoded(container, stream):
                if frame.pts is None:
                    continue
                first_pts = frame.pts if first_pts is None else first_pts
                pos_s = (frame.pts - first_pts) * tb
                if self.end_s is not None and pos_s >= self.end_s - 1e-6:
                    break
                self.stats.frames_decoded += 1
                if pos_s + 0.5 / self.fps < next_due:
                    self.stats.frames_dropped += 1
                    continue
                while next_due <= pos_s + 0.5 / self.fps:
                    next_due += period
                ts = self.start_time + pos_s
                self.stats.last_frame_ts, self.stats.last_frame_wall = ts, time.time()
                if self.main is not None:
                    self.main.advance_to(ts)
                yield Frame(self.camera_id, index, ts, frame.to_ndarray(format="bgr24"))
                index += 1
        finally:
            container.close()
            if self.main is not None:
                self.main.close()
            self.stats.state = SourceState.ENDED


class MainStreamFile:
    """A video file read as a camera's main stream: demuxed only, its packets into `ring` as time passes."""

    def __init__(self, path: str | Path, *, keep_s: float, start_time: float = 0.0) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file {self.path} does not exist")
        self.ring = PacketRing(keep_s)
        self.start_time = start_time
        self._container, self._stream = _open_video(self.path)
        self.ring.reset(StreamInfo.of(self._stream))
        self._packets = self._container.demux(self._stream)
        self._tb = float(self._stream.time_base)
        self._first_pts: int | None = None
        self._ahead: Packet | None = None  # read, not yet due
        self.packets_read = 0

    def advance_to(self, ts: float) -> None:
        """Push every packet presented at or before `ts`."""
        while True:
            packet = self._ahead or self._next()
            self._ahead = None
            if packet is None:
                return
            if packet.ts > ts + 1e-6:
                self._ahead = packet
                return
            self.ring.push(packet)

    def _next(self) -> Packet | None:
        for packet in self._packets:
            if packet.size == 0 or packet.pts is None:
                continue
            self._first_pts = packet.pts if self._first_pts is None else self._first_pts
            self.packets_read += 1
            return Packet(self.start_time + (packet.pts - self._first_pts) * self._tb, bytes(packet),
                          bool(packet.is_keyframe))
        return None

    def close(self) -> None:
        self._container.close()


# --- a live main stream --------------------------------------------------------------------------


class MainStreamRecorder:
    """Demuxes a camera's main stream on a daemon thread into `ring`; never decodes.

    Packet times are on the clock `LiveReader` stamps the detect stream with: for RTSP the camera's
    sender reports or the stream position (`RtspClock`), for other live sources the wall clock
    at arrival; a file plays at real speed from `start_time` (default: when it began). So a camera's
    two streams share one clock. A lost source is reopened as `ReconnectPolicy` says.
    """

    def __init__(self, camera_id: str, source: str | int, *, keep_s: float, start_time: float | None = None,
                 loop_file: bool = False, open_timeout_s: float = 5.0, reconnect: ReconnectPolicy | None = None,
                 rtsp_transport: str = "tcp") -> None:
        self.camera_id = camera_id
        self.source = source
        self.kind = source_kind(source)
        self.ring = PacketRing(keep_s)
        self.start_time = start_time
        self.loop_file = loop_file
        self.open_timeout_s = open_timeout_s
        self.reconnect = reconnect or ReconnectPolicy()  # the same policy as the detect stream's reader
        self.rtsp_transport = rtsp_transport
        self.stats = IngestStats(live=self.kind != SourceKind.FILE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> MainStreamRecorder:
        """Start demuxing on the recorder's own thread."""
        self._thread = threading.Thread(target=self._run, name=f"main-{self.camera_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and wait for the thread (a source that hangs is left to its open/read timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _open(self) -> av.container.InputContainer:
        if self.kind == SourceKind.DEVICE:
            raise ValueError("a device index cannot be a main stream; give the camera's stream URL")
        if self.kind == SourceKind.RTSP:
            return open_rtsp(self.source, self.open_timeout_s, self.open_timeout_s, self.rtsp_transport)
        return av.open(str(self.source), timeout=self.open_timeout_s)

    def _run(self) -> None:
        attempt = 0
        t0 = time.time() if self.start_time is None else self.start_time
        while not self._stop.is_set():
            try:
                container = self._open()
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                self.stats.state = SourceState.OFFLINE
                self.stats.open_failures += 1
                self.stats.last_error = f"cannot open {shown_source(self.source)}: {error_reason(exc)}"
                attempt += 1
                self._wait_to_retry(attempt)
                continue
            self.stats.state = SourceState.ONLINE
            try:
                t0 = self._record(container, t0)
            except (av.error.FFmpegError, OSError) as exc:
                self.stats.last_error = error_reason(exc)  # PyAV's text carries the URL, credentials and all
            finally:
                container.close()
                self.stats.state = SourceState.OFFLINE
            if self.kind == SourceKind.FILE and not self.loop_file:
                self.stats.state = SourceState.ENDED
                return
            if self.kind != SourceKind.FILE and not self._stop.is_set():  # stopping is no loss
                attempt += 1
                log.warning("camera %s: main stream %s lost (%s); retrying", self.camera_id,
                            shown_source(self.source), self.stats.last_error or "the stream ended")
                self._wait_to_retry(attempt)

    def _wait_to_retry(self, attempt: int) -> None:
        self._stop.wait(self.reconnect.delay(attempt, host_answers=tcp_answer(self.source) != "no answer"))

    def _record(self, container: av.container.InputContainer, t0: float) -> float:
        """Demux until the source ends or fails; returns where a looping file's next pass starts."""
        stream = container.streams.video[0]
        self.ring.reset(StreamInfo.of(stream))
        tb, first, wall0 = float(stream.time_base), None, time.monotonic()
        clock = RtspClock(StreamClock()) if self.kind == SourceKind.RTSP else None  # the detect stream's clock
        pos_s = 0.0
        for packet in container.demux(stream):
            if self._stop.is_set():
                break
            if packet.size == 0 or packet.pts is None:
                continue
            first = packet.pts if first is None else first
            pos_s = (packet.pts - first) * tb
            if self.kind == SourceKind.FILE:
                self._stop.wait(max(0.0, wall0 + pos_s - time.monotonic()))  # real speed
                ts = t0 + pos_s
            else:
                ts = clock.frame_time(pos_s, sender_report_wall(packet), time.time()) if clock else time.time()
                self.stats.clock = clock.source if clock else ClockSource.DECODE
            self.stats.frames_decoded += 1  # demuxed: nothing here decodes
            self.stats.last_frame_ts, self.stats.last_frame_wall = ts, time.time()
            self.ring.push(Packet(ts, bytes(packet), bool(packet.is_keyframe)))
        return t0 + pos_s + (1.0 / float(stream.average_rate or 25))
