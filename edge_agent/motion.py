"""Motion gating: decide per sampled frame whether the detector must run.

Cost model (Frigate's, made safe for enforcement): the detector is the expensive stage, so it runs
only when something moved. Three things keep gating from losing problems:
- the first frame is always scanned, so objects already present when the agent starts count;
- while tracks exist, a full re-check runs every `recheck_interval_s` even without motion, so a
  parked car keeps matching its track (whose grace window must exceed that interval) and its dwell
  timer never resets;
- with no tracks at all, a slow `idle_scan_interval_s` catches what crept in below the motion
  threshold (a stall set up slowly, lighting drift).

The gate works on whole frames: a fixed-input detector (NanoDet 416x416) costs the same for a crop
as for a frame, so skipping frames is what saves compute. Motion boxes are still reported for
metrics and debugging. Pure: numpy + OpenCV image ops, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.types import Track, TrackState


class MotionConfig(BaseModel):
    """Motion-gating knobs; the image is analysed at `width` px wide in grey."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="false runs the detector on every sampled frame")
    width: int = Field(160, ge=32, le=1280, description="width of the downscaled grey analysis image")
    threshold: int = Field(
        20, ge=1, le=255, description="grey-level difference from the background that counts as change")
    min_area: float = Field(
        0.0005, gt=0.0, le=1.0,
        description="smallest changed blob, as a fraction of the frame, that counts as motion; "
        "lower catches small far objects but also noise")
    background_alpha: float = Field(
        0.2, gt=0.0, le=1.0,
        description="how fast the background absorbs the current frame per sample (1 = plain frame "
        "differencing); lower remembers longer, so slow movers still show")
    recheck_interval_s: float = Field(
        5.0, gt=0.0, le=300.0,
        description="with live tracks, run the detector at least this often even without motion")
    idle_scan_interval_s: float = Field(
        30.0, gt=0.0, le=3600.0, description="with no tracks, run the detector at least this often")
    keyframes_when_still_s: float | None = Field(
        None, gt=0.0, le=3600.0,
        description="detect streams read from files: once nothing has moved near the watched zones for this long "
        "and every track stands still, decode only the stream's keyframes (motion checks and re-checks then run "
        "once per keyframe interval) until motion shows on one; null: off. For dwell rules only: motion that "
        "starts and ends between two keyframes is not seen")
    roi_margin: float | None = Field(
        0.03, ge=0.0, le=1.0,
        description="only motion within this margin (fraction of the frame) of a zone that a rule watches "
        "wakes the detector; null: motion anywhere counts. Objects walking past outside every zone then cost "
        "nothing, and re-checks still keep every track alive")


class GateReason(StrEnum):
    START = "start"  # first frame: objects already present count
    MOTION = "motion"
    RECHECK = "recheck"  # stationary tracks re-confirmed without motion
    IDLE_SCAN = "idle_scan"
    DISABLED = "disabled"  # gating off: every sampled frame
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class GateDecision:
    detect: bool
    reason: GateReason
    motion_fraction: float  # changed pixels / all pixels of the analysis image
    motion_boxes: np.ndarray  # (N, 4) xyxy in frame pixels


class MotionDetector:
    """Running-average background on a small blurred grey image -> changed-pixel mask and boxes."""

    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        self._background: np.ndarray | None = None

    def _small_grey(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        h, w = image.shape[:2]
        scale = self.config.width / w
        small = cv2.resize(image, (self.config.width, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey, (5, 5), 0).astype(np.float32), scale

    def update(self, image: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        """Feed one BGR frame; returns (mask uint8 of the small image, changed fraction, boxes in frame px)."""
        grey, scale = self._small_grey(image)
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey.copy()
            return np.zeros(grey.shape, np.uint8), 0.0, np.zeros((0, 4), np.float32)
        diff = cv2.absdiff(grey, self._background)
        cv2.accumulateWeighted(grey, self._background, self.config.background_alpha)
        mask: np.ndarray = (diff >= self.config.threshold).astype(np.uint8) * 255
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=2)
        boxes = self._boxes(mask, scale)
        fraction = float(np.count_nonzero(mask)) / mask.size if len(boxes) else 0.0
        return mask, fraction, boxes

    def _boxes(self, mask: np.ndarray, scale: float) -> np.ndarray:
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        min_px = self.config.min_area * mask.size
        out = [stats[i, :4] for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= min_px]
        if not out:
            return np.zeros((0, 4), np.float32)
        xywh = np.array(out, np.float32)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        return xyxy / scale


class MotionGate:
    """Decides, per sampled frame of one camera, whether to run the detector. Times in seconds."""

    def __init__(self, config: MotionConfig | None = None,
                 roi_norm: list[tuple[float, float, float, float]] | None = None) -> None:
        """`roi_norm`: boxes (x1, y1, x2, y2 in 0-1) around the zones rules watch; None: the whole frame."""
        self.config = config or MotionConfig()
        self.motion = MotionDetector(self.config)
        self.roi_norm = roi_norm if self.config.roi_margin is not None else None
        self._last_detect: float | None = None
        self.frames = 0
        self.detects = 0

    @property
    def saved(self) -> int:
        """Detector calls avoided so far (sampled frames that were not detected)."""
        return self.frames - self.detects

    def decide(self, image: np.ndarray, ts: float, tracks: list[Track]) -> GateDecision:
        self.frames += 1
        _, fraction, boxes = self.motion.update(image) if self.config.enabled else (None, 0.0, _NO_BOXES)
        reason = self._reason(ts, tracks, self._relevant(boxes, image.shape[1], image.shape[0]))
        detect = reason != GateReason.SKIP
        if detect:
            self.detects += 1
            self._last_detect = ts
        return GateDecision(detect, reason, fraction, boxes)

    def _relevant(self, boxes: np.ndarray, w: int, h: int) -> bool:
        """Any motion box touching the region of interest."""
        if len(boxes) == 0 or self.roi_norm is None:
            return len(boxes) > 0
        m = self.config.roi_margin or 0.0
        for x1, y1, x2, y2 in self.roi_norm:
            rx1, ry1, rx2, ry2 = (x1 - m) * w, (y1 - m) * h, (x2 + m) * w, (y2 + m) * h
            hit = (boxes[:, 0] < rx2) & (boxes[:, 2] > rx1) & (boxes[:, 1] < ry2) & (boxes[:, 3] > ry1)
            if hit.any():
                return True
        return False

    def _reason(self, ts: float, tracks: list[Track], moved: bool) -> GateReason:
        if self._last_detect is None:
            return GateReason.START
        if not self.config.enabled:
            return GateReason.DISABLED
        if moved:
            return GateReason.MOTION
        since = ts - self._last_detect
        live = any(t.state in (TrackState.NEW, TrackState.TRACKED, TrackState.LOST) for t in tracks)
        if live and since >= self.config.recheck_interval_s:
            return GateReason.RECHECK
        if not live and since >= self.config.idle_scan_interval_s:
            return GateReason.IDLE_SCAN
        return GateReason.SKIP


_NO_BOXES = np.zeros((0, 4), np.float32)
