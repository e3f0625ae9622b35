"""A live frame's true time from its position in the stream, not from when it was decoded.

A frame decoded now may have been made long ago: after the agent was paused, the network and the
decoder still hold seconds of old video, and they come out at decode speed. Stamping them "now"
would make walkers look like they stood still for the whole pause. The stream's own clock (the RTP
timestamps FFmpeg turns into `pts`) says how far apart frames were made; what it lacks is the wall
time of its zero. `StreamClock` takes that from the frames that reached us soonest:
`offset = min(wall at decode - pts)`, so `frame time = pts + offset`, and a frame that waited in a
buffer gets its (older) true time and is then dropped as stale by the reader.

The stream clock can jump. Backwards (FFmpeg re-bases on the first RTCP sender report, a camera
restarts its counter): the frame is placed one frame after the previous one. Forwards by more than
the wall time that passed: the min takes the new offset at once. A stream whose frames keep arriving
at the real rate but all look late by the same amount for `resync_s` is a shifted clock (a source
that paused its timeline), not a backlog, which would drain faster than real time: the clock
re-anchors on them rather than dropping a healthy stream forever; a lag that keeps changing (a
backlog draining, a stream slowing to a stall) never re-anchors it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum

STEADY_S = 0.5  # a lag that moved less than this over a resync window is steady
MIN_FRAMES = 5  # ...and only if frames kept coming meanwhile


@dataclass
class StreamClock:
    """Maps stream positions (seconds) to wall-clock frame times for one connection."""

    late_s: float = 2.0  # frames later than this (beyond the soonest ones) start a resync watch
    resync_s: float = 3.0
    frame_s: float = 0.04  # assumed frame spacing across a backward jump
    _offset: float | None = None
    _last_pts: float | None = None
    _late_since: tuple[float, float] | None = None  # (wall, lag) when frames began to look late
    _late_frames: int = 0

    def frame_time(self, pts_s: float, wall: float) -> float:
        """The time a frame at stream position `pts_s`, decoded at wall time `wall`, was made."""
        if self._offset is None or self._last_pts is None:
            self._offset = wall - pts_s
        elif pts_s == self._last_pts:
            return wall  # a stream without timestamps: the decode time is all there is
        elif pts_s < self._last_pts:
            self._offset = self._last_pts + self._offset + self.frame_s - pts_s
        self._last_pts = pts_s
        raw = wall - pts_s
        if raw < self._offset:
            self._offset = raw
        self._watch_lag(raw - self._offset, raw, wall)
        return pts_s + self._offset

    @property
    def offset(self) -> float | None:
        """Wall time minus stream position at the anchor (None before the first frame)."""
        return self._offset

    def _watch_lag(self, lag: float, raw: float, wall: float) -> None:
        if lag <= self.late_s:
            self._late_since = None
            return
        if self._late_since is None or abs(lag - self._late_since[1]) >= STEADY_S:
            # late for the first time, or the lag moved: a backlog draining (frames really old) or a
            # stream slowing down (a stall): watch again from here
            self._late_since, self._late_frames = (wall, lag), 0
            return
        self._late_frames += 1
        if wall - self._late_since[0] >= self.resync_s and self._late_frames >= MIN_FRAMES:
            self._offset = raw  # a steady lag at the real rate: the stream's clock moved, not the frames
            self._late_since = None


class ClockSource(StrEnum):
    """Which clock a camera's frame times come from (health and metrics say it)."""

    SENDER_REPORT = "rtcp-sr"  # the camera's RTCP sender reports map RTP times to its wall clock
    STREAM = "stream"  # the stream position anchored on the earliest arrivals (StreamClock)
    PART_HEADER = "x-timestamp"  # HTTP MJPEG parts stamped with their capture time (X-Timestamp)
    DECODE = "decode"  # the wall clock at decode: the source sends no usable time
    FILE = "file"  # a file's own timeline


def prft_wall_s(side_data: bytes) -> float:
    """The wall time in a packet's AV_PKT_DATA_PRFT side data (AVProducerReferenceTime: int64 wallclock
    in microseconds, then int flags). FFmpeg's RTP demuxer attaches it to every packet once the
    stream's first RTCP sender report came: the SR's NTP time plus the packet's RTP time since."""
    (wallclock_us,) = struct.unpack_from("<q", side_data)
    return wallclock_us / 1e6


@dataclass
class CameraClock:
    """Whether to believe a source's own wall times (RTCP sender reports, MJPEG part stamps).

    A camera's time needs no guess about network delay or buffers, and a frame that waited anywhere
    keeps its true, older time; but it is the camera's clock. It is believed while it agrees with
    ours: `skew_s`, our arrival time minus the camera's time at its least (clock offset plus the
    shortest delay; re-measured like StreamClock's anchor when it shifts for good), within
    `max_skew_s`. A camera whose clock is off (no NTP, reset after a power cut) would otherwise make
    every frame look stale or from the future."""

    max_skew_s: float = 1.0
    late_s: float = 2.0
    resync_s: float = 3.0
    skew_s: float | None = None
    _anchor: StreamClock | None = None

    def believe(self, camera_wall: float, wall: float) -> bool:
        """True if a frame the camera stamped `camera_wall`, arriving at `wall`, can carry that time."""
        if self._anchor is None:
            self._anchor = StreamClock(late_s=self.late_s, resync_s=self.resync_s)
        self._anchor.frame_time(camera_wall, wall)  # its anchor is the skew
        self.skew_s = self._anchor.offset
        return self.skew_s is not None and abs(self.skew_s) <= self.max_skew_s


@dataclass
class RtspClock:
    """Frame times of one RTSP connection: the camera's RTCP sender reports (FFmpeg hands them on as
    each packet's `sr_wall`) while `CameraClock` believes them, else the stream position
    (`StreamClock`): before the first SR (a second or few after connecting), for cameras that send
    none, and for a camera whose clock is off (its skew is reported)."""

    stream: StreamClock
    camera: CameraClock | None = None
    source: ClockSource = ClockSource.STREAM

    @property
    def skew_s(self) -> float | None:
        return self.camera.skew_s if self.camera else None

    def frame_time(self, pts_s: float, sr_wall: float | None, wall: float) -> float:
        stream_ts = self.stream.frame_time(pts_s, wall)  # kept current: the fallback at any moment
        if sr_wall is not None:
            if self.camera is None:
                self.camera = CameraClock(late_s=self.stream.late_s, resync_s=self.stream.resync_s)
            if self.camera.believe(sr_wall, wall):
                self.source = ClockSource.SENDER_REPORT
                return sr_wall
        self.source = ClockSource.STREAM
        return stream_ts
