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

from dataclasses import dataclass

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
