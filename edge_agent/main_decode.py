"""A camera's main-stream decoder for evidence and plate reads, kept warm between requests.

`streams.decode_at` decodes from the keyframe before the first time asked, every time. A camera's
requests mostly go forward in time (plate reads a few seconds apart, then the event's stills and
clip), and a camera's main stream may have a keyframe only every 10-25 s, so decoding from the
keyframe each time repeats the same hundreds of frames. `MainDecoder` keeps its decoder and the
last frame it gave: a request whose earliest time is at or after that frame goes on from the next
packet; anything else starts over at the keyframe. One per camera, used from one thread.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import cast

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

from edge_agent.streams import Packet, StreamInfo

_EPS = 1e-6


class MainDecoder:
    """BGR images of a camera's main stream at given times: for each time, the last frame shown at
    or before it (the first frame of the span for earlier times), as `decode_at` picks them."""

    def __init__(self) -> None:
        self._info: StreamInfo | None = None
        self._ctx: VideoCodecContext | None = None
        self._fed_ts: float | None = None  # the last packet fed to `_ctx`
        self._current: tuple[float, av.VideoFrame] | None = None  # the last frame out of `_ctx`
        self._pts_ts: dict[int, float] = {}  # counter put on fed packets -> their time
        self._counter = 0
        self.packets_decoded = 0  # all requests together (benches, metrics)
        self.restarts = 0  # requests that started over at a keyframe

    def images_at(self, info: StreamInfo | None, packets: Sequence[Packet],
                  times: Sequence[float]) -> list[np.ndarray]:
        """One image per time in `times` (any order); empty when nothing decodes. `packets` run from a
        keyframe at or before the earliest time (`PacketRing.since`)."""
        if info is None or not packets or not times:
            return []
        start = self._resume_at(info, packets, min(times))
        if start is None:
            self._restart(info)
            start = 0
        picked: dict[int, tuple[float, av.VideoFrame]] = {}
        if self._current is not None:
            self._pick(picked, times, *self._current)
        last_needed = max(times)
        for packet in packets[start:]:
            if self._feed(packet, picked, times) > last_needed + _EPS:
                break
        else:
            if any(ts <= last_needed + _EPS for ts in self._pts_ts.values()):
                self._drain(picked, times)  # frames still in the decoder are wanted: it cannot go on after
        if len(picked) < len(times):
            return []
        converted: dict[int, np.ndarray] = {}
        return [converted.setdefault(id(picked[i][1]), picked[i][1].to_ndarray(format="bgr24"))
                for i in range(len(times))]

    def _resume_at(self, info: StreamInfo, packets: Sequence[Packet], earliest: float) -> int | None:
        """Index of the packet after the last one fed, when the decoder may go on from there."""
        if self._ctx is None or info != self._info or self._fed_ts is None or self._current is None:
            return None
        if self._current[0] > earliest + _EPS:
            return None  # an earlier frame is wanted: only a keyframe reaches back
        times = [p.ts for p in packets]
        i = bisect.bisect_left(times, self._fed_ts - _EPS)
        if i >= len(packets) or abs(packets[i].ts - self._fed_ts) > _EPS:
            return None  # the ring moved past it (or another span): start over
        return i + 1

    def _restart(self, info: StreamInfo) -> None:
        self._info, self._ctx = info, cast(VideoCodecContext, info.decoder())
        self._ctx.thread_count = 1  # the evidence threads decode side by side, one camera each
        self._fed_ts, self._current, self._pts_ts = None, None, {}
        self.restarts += 1

    def _feed(self, packet: Packet, picked: dict[int, tuple[float, av.VideoFrame]],
              times: Sequence[float]) -> float:
        """Decode one packet; returns the time of the newest frame out so far (-inf before any)."""
        assert self._ctx is not None
        av_packet = av.Packet(packet.data)
        av_packet.pts = av_packet.dts = self._counter
        self._pts_ts[self._counter] = packet.ts
        self._counter += 1
        self._fed_ts = packet.ts
        self.packets_decoded += 1
        try:
            frames = self._ctx.decode(av_packet)
        except av.error.FFmpegError:
            frames = []  # a damaged packet: the frames around it still count
        for frame in frames:
            self._take(frame, picked, times)
        if len(self._pts_ts) > 256:  # packets that never gave a frame (damaged)
            for key in sorted(self._pts_ts)[:-64]:
                del self._pts_ts[key]
        return self._current[0] if self._current else float("-inf")

    def _drain(self, picked: dict[int, tuple[float, av.VideoFrame]], times: Sequence[float]) -> None:
        assert self._ctx is not None
        try:
            for frame in self._ctx.decode(None):
                self._take(frame, picked, times)
        except av.error.FFmpegError:
            pass
        self._ctx = None  # drained: the next request starts over

    def _take(self, frame: av.VideoFrame, picked: dict[int, tuple[float, av.VideoFrame]],
              times: Sequence[float]) -> None:
        ts = self._pts_ts.pop(frame.pts, None) if frame.pts is not None else None
        if ts is None:
            return
        self._current = (ts, frame)
        self._pick(picked, times, ts, frame)

    @staticmethod
    def _pick(picked: dict[int, tuple[float, av.VideoFrame]], times: Sequence[float], ts: float,
              frame: av.VideoFrame) -> None:
        """Frames arrive in time order: each is the pick of every time it is at or before, and of
        those earlier than any frame so far."""
        for i, wanted in enumerate(times):
            if ts <= wanted + _EPS or i not in picked:
                picked[i] = (ts, frame)
