"""When the edge reads plates, and what it keeps for the evidence.

Reading costs 50-300 ms on a camera box's CPU, so a plate is read only where it pays: a vehicle that
has stopped inside a zone watched by a parking rule (a moving car is not a case), a few times per
track spaced in time (so the reads are of different frames), and at most one read per camera per
tick (the oldest due first), so a street full of parked cars cannot stall the detector. Once enough
reads agree the track is not read again.

Per track it keeps the frame it was first seen stopped in (the first timed still) and the frame and
plate of its best read (the close-up and the plate crop).

A camera that detects on a low-resolution sub-stream reads its plates on the main stream: `offload`
(set by the pipeline) hands the frame to the camera's evidence thread, which decodes the main
stream's frame of that moment and calls back with it, so the stills, the close-up and the reads are
full size and the decoding stays off the hot path (the event is built on the same thread, after).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.plates.image import MIN_VEHICLE_WIDTH, vehicle_crop
from edge_agent.plates.ocr import rectify
from edge_agent.plates.reader import PlateRead, PlateReader
from edge_agent.plates.vote import PlateVote, Verdict
from edge_agent.types import Frame, Track, TrackState
from edge_agent.zones import Zone
from protocol.plates import PLATE_LABELS

PLATE_CROP_HEIGHT = 120  # pixels: the plate crop is upscaled to at least this, so it is legible on a page


class PlateConfig(BaseModel):
    """Plate reading on parked vehicles (parking classes of the catalog, vehicle labels)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="read the plates of vehicles stopped in parking-rule zones")
    after_stationary_s: float = Field(2.0, ge=0.0, description="first read once a vehicle has stood this long")
    interval_s: float = Field(5.0, gt=0.0, description="seconds between two reads of one vehicle")
    max_reads: int = Field(5, ge=1, le=50, description="reads per vehicle at most")
    agree: int = Field(3, ge=1, le=50, description="stop reading a vehicle once this many reads agree")
    min_vehicle_px: int = Field(MIN_VEHICLE_WIDTH, ge=16,
                                description="narrower vehicles are not read: their plate is illegible")
    threads: int | None = Field(None, ge=1, le=64, description="onnxruntime threads (default: all cores)")


@dataclass
class TrackPlates:
    """One vehicle's reads and the frames its evidence needs."""

    vote: PlateVote = field(default_factory=PlateVote)
    stopped_frame: Frame | None = None  # first frame seen stopped inside the zone
    stopped_xyxy: tuple[float, float, float, float] | None = None
    best: PlateRead | None = None  # best legible read, in frame pixels
    best_frame: Frame | None = None
    best_vehicle: tuple[float, float, float, float] | None = None
    last_read: float | None = None
    scheduled: int = 0  # reads asked for (with `offload` they finish later, on another thread)
    last_seen: float = 0.0
    too_small: bool = False  # seen stopped but never wide enough to read

    def verdict(self) -> Verdict:
        return self.vote.verdict()

    def plate_crop(self) -> np.ndarray | None:
        """The best read's plate, upright and upscaled to be legible."""
        if self.best is None or self.best_frame is None:
            return None
        plate = rectify(self.best_frame.image, self.best.corners)
        scale = max(1.0, PLATE_CROP_HEIGHT / plate.shape[0])
        return cv2.resize(plate, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)


Box = tuple[float, float, float, float]
# Runs a callback with the full-size frame of the moment `frame` shows, later, on the camera's evidence
# thread (the pipeline's main-stream hand-off: `EvidenceBuilder.at_main`).
Offload = Callable[[Frame, Callable[[Frame], None]], None]


class PlateWatcher:
    """One camera's plate reads. Call `observe` on every detected frame with the zones to watch."""

    FORGET_AFTER_S = 900.0  # a track's reads are kept this long after it was last seen (late events)

    def __init__(self, config: PlateConfig, reader: PlateReader) -> None:
        self.config = config
        self.reader = reader
        self.tracks: dict[int, TrackPlates] = {}
        self.reads = 0  # plates read (frames), for metrics and benches
        self.read_s = 0.0  # seconds spent reading
        self.offload: Offload | None = None  # None: read on the frames `observe` gets, at once
        self.scale: Callable[[Frame], float] = lambda frame: 1.0  # full-size width / the detect frame's

    def observe(self, frame: Frame, tracks: Sequence[Track], zones: Sequence[Zone]) -> None:
        """Note vehicles stopped in `zones`; read the plate of the one most overdue (if any)."""
        due: list[tuple[float, Track, TrackPlates]] = []
        for t in tracks:
            if t.label not in PLATE_LABELS or t.stationary_since is None or t.state == TrackState.LOST:
                continue  # moving, not a vehicle, or not in view (a stopped one's box holds while the
                # motion gate skips the detector: nothing moved)
            if not any(z.contains_box(t.xyxy) for z in zones):
                continue
            state = self.tracks.setdefault(t.track_id, TrackPlates())
            state.last_seen = frame.ts
            if state.stopped_frame is None:
                state.stopped_frame, state.stopped_xyxy = frame, t.xyxy
                self._at_full_size(frame, t.xyxy, functools.partial(_stopped, state))
            if self._due(state, t, frame):
                due.append((state.last_read or t.stationary_since, t, state))
        if due:
            _, track, state = min(due, key=lambda d: d[0])
            state.last_read, state.scheduled = frame.ts, state.scheduled + 1
            self._at_full_size(frame, track.xyxy, functools.partial(self._read, state))
        self._forget(frame.ts)

    def _at_full_size(self, frame: Frame, xyxy: Box, then: Callable[[Frame, Box], None]) -> None:
        """`then(frame, box)` with the full-size frame and the box scaled to it: now without `offload`."""
        if self.offload is None:
            then(frame, xyxy)
            return
        wh = frame.resolution_wh

        def scaled(full: Frame) -> None:
            kx, ky = full.image.shape[1] / wh[0], full.image.shape[0] / wh[1]
            then(full, (xyxy[0] * kx, xyxy[1] * ky, xyxy[2] * kx, xyxy[3] * ky))

        self.offload(frame, scaled)

    def _due(self, state: TrackPlates, t: Track, frame: Frame) -> bool:
        cfg, now = self.config, frame.ts
        if (t.xyxy[2] - t.xyxy[0]) * self.scale(frame) < cfg.min_vehicle_px:  # as wide as the frame read shows it
            state.too_small = True
            return False
        if state.scheduled >= cfg.max_reads or state.vote.agreed() >= cfg.agree:
            return False
        if now - (t.stationary_since or now) < cfg.after_stationary_s:
            return False
        return state.last_read is None or now - state.last_read >= cfg.interval_s * 0.95

    def _read(self, state: TrackPlates, frame: Frame, vehicle: Box) -> None:
        started = time.perf_counter()
        crop, (left, top) = vehicle_crop(frame.image, vehicle)
        reads = self.reader.read(crop)
        self.read_s += time.perf_counter() - started
        self.reads += 1
        state.last_read = frame.ts
        read = reads[0] if reads else None
        if read is not None:
            shift = np.array([left, top], np.float32)
            x1, y1, x2, y2 = read.xyxy
            read = PlateRead(read.text, read.colour, read.score, read.min_char,
                             (x1 + left, y1 + top, x2 + left, y2 + top), read.corners + shift)
        state.vote.add(read)
        if read is not None and (state.best is None or read.score > state.best.score):
            state.best, state.best_frame, state.best_vehicle = read, frame, vehicle

    def _forget(self, now: float) -> None:
        for tid in [tid for tid, s in self.tracks.items() if now - s.last_seen > self.FORGET_AFTER_S]:
            del self.tracks[tid]

    def for_tracks(self, track_ids: Sequence[int]) -> TrackPlates | None:
        """The state of the first of `track_ids` that was seen stopped in a watched zone."""
        for tid in track_ids:
            if tid in self.tracks:
                return self.tracks[tid]
        return None


def _stopped(state: TrackPlates, frame: Frame, xyxy: Box) -> None:
    """The full-size frame the vehicle was first seen stopped in (the first timed still)."""
    state.stopped_frame, state.stopped_xyxy = frame, xyxy
