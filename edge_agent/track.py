"""ByteTrack-style multi-object tracker: `Detections` at time `ts` -> `list[Track]`. Pure numpy.

What differs from the reference ByteTrack (and why):
- Every duration is seconds from frame timestamps. The Kalman filter integrates the real `dt`
  (velocities are px/s), and lost tracks expire after `lost_grace_s`, so uneven or gated frame
  rates (motion gating calls us at 0.2-10 Hz) do not change how long anything lives. A gap in time
  ages every track by the gap before matching: a track unseen for longer than its grace cannot be
  re-acquired after a pause, whatever the frame count.
- A lost track keeps its id, `first_seen` and `stationary_since` while inside the grace window:
  a pedestrian walking in front of a parked van must not reset the van's dwell timer.
- Matching is class-aware, but labels the detector confuses on one object (car/truck/bus) form one
  group; a track reports the label with the most accumulated score.
- Stationarity is measured against an anchor box: the object is stationary since the anchor's time
  once its box has overlapped the anchor (IoU >= `stationary_iou`) for `stationary_min_s`; a
  match that leaves the anchor re-anchors and clears `stationary_since`.

Association is greedy by IoU (highest first), which equals the optimal assignment whenever boxes
are not ambiguous and costs no scipy on the camera box.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.decoders import nms
from edge_agent.geometry import Box, iou, iou_matrix
from edge_agent.types import Detections, Track, TrackState


class TrackerConfig(BaseModel):
    """Tracker knobs. Thresholds are detector scores (0-1); durations are seconds."""

    model_config = ConfigDict(extra="forbid")

    high_score: float = Field(
        0.3, ge=0.0, le=1.0,
        description="detections at or above this score are matched first and may start tracks; "
        "higher = fewer false tracks, but weak objects (a half-hidden car) never start one")
    low_score: float = Field(
        0.1, ge=0.0, le=1.0,
        description="detections between low_score and high_score only extend existing tracks "
        "(ByteTrack's second stage), which keeps occluded objects alive")
    new_track_score: float = Field(
        0.3, ge=0.0, le=1.0, description="minimum score of an unmatched detection to start a track")
    match_iou: float = Field(
        0.2, gt=0.0, le=1.0,
        description="minimum IoU between a predicted track box and a detection in the first stage; "
        "lower tolerates low frame rates and fast motion, higher avoids id swaps in crowds")
    low_match_iou: float = Field(
        0.5, gt=0.0, le=1.0, description="minimum IoU in the second stage (low-score detections)")
    lost_grace_s: float = Field(
        10.0, ge=0.0, le=600.0,
        description="how long an unmatched track keeps its id and timers; must exceed the "
        "stationary re-check interval of motion gating")
    stationary_iou: float = Field(
        0.6, gt=0.0, le=1.0,
        description="a box overlapping its anchor box at least this much has not moved")
    stationary_min_s: float = Field(
        2.0, ge=0.0, le=600.0,
        description="how long a box must stay on its anchor before the track is called stationary "
        "(the dwell then counts from the anchor's time, not from this moment)")
    score_window: int = Field(
        10, ge=1, le=100,
        description="a track's score is the median of its last this many detection scores (fewer than three "
        "count the missing ones as 0), the best such median of the last score_hold_s. Rules read it")
    score_hold_s: float = Field(
        10.0, ge=0.0, le=600.0,
        description="how long a track's best recent median holds: a parked car whose score wavers around the "
        "threshold keeps counting, and an object scored high for a moment and low ever after (a cone taken "
        "for a person) stops counting this long after")
    class_groups: list[list[str]] = Field(
        default_factory=lambda: [["car", "truck", "bus"]],
        description="labels that may match each other because the detector flips between them "
        "on the same object")
    duplicate_iou: float = Field(
        0.7, gt=0.0, le=1.0,
        description="boxes of one class group overlapping at least this much are one object the detector "
        "named twice (a van as truck and as bus): only the best scored is tracked, else its twin starts a "
        "second track of the same object")

    @model_validator(mode="after")
    def _ordered(self) -> TrackerConfig:
        if self.low_score > self.high_score:
            raise ValueError(f"low_score ({self.low_score}) must not exceed high_score ({self.high_score})")
        return self


# --- geometry -------------------------------------------------------------------------------




def greedy_match(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) taken highest score first, each row and column at most once, score >= threshold."""
    pairs: list[tuple[int, int]] = []
    if score.size == 0:
        return pairs
    rows_used: set[int] = set()
    cols_used: set[int] = set()
    order = np.argsort(-score, axis=None, kind="stable")
    for flat in order:
        r, c = divmod(int(flat), score.shape[1])
        if score[r, c] < threshold:
            break
        if r in rows_used or c in cols_used:
            continue
        pairs.append((r, c))
        rows_used.add(r)
        cols_used.add(c)
    return pairs


# --- Kalman filter over (cx, cy, aspect, h) with real time steps -------------------------------

# Noise per sqrt(second), relative to box height; tuned so that at 10 fps they match ByteTrack's
# per-frame constants (1/20 position, 1/160 velocity in px/frame).
_POS_STD = 0.16
_VEL_STD = 0.2
_MEAS_STD = 1 / 20


def _xyxy_to_xyah(box: np.ndarray) -> np.ndarray:
    w, h = box[2] - box[0], max(box[3] - box[1], 1e-3)
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, w / h, h], dtype=np.float64)


def _xyah_to_xyxy(m: np.ndarray) -> Box:
    cx, cy, a, h = (float(v) for v in m[:4])
    h = max(h, 1e-3)
    w = a * h
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


@dataclass
class _Kalman:
    mean: np.ndarray  # (8,) cx, cy, a, h, vcx, vcy, va, vh (velocities per second)
    cov: np.ndarray  # (8, 8)

    @classmethod
    def start(cls, box: np.ndarray) -> _Kalman:
        z = _xyxy_to_xyah(box)
        h = z[3]
        std = np.array([2 * _MEAS_STD * h, 2 * _MEAS_STD * h, 1e-2, 2 * _MEAS_STD * h,
                        0.6 * h, 0.6 * h, 1e-4, 0.6 * h])
        return cls(np.concatenate([z, np.zeros(4)]), np.diag(std**2))

    def predict(self, dt: float, keep_still: bool) -> None:
        if dt <= 0:
            return
        if keep_still:  # a stationary object does not drift away while it is hidden
            self.mean[4:] = 0.0
        f = np.eye(8)
        f[:4, 4:] = np.eye(4) * dt
        h = max(self.mean[3], 1.0)
        q = np.array([_POS_STD * h, _POS_STD * h, 1e-2, _POS_STD * h,
                      _VEL_STD * h, _VEL_STD * h, 1e-4, _VEL_STD * h]) ** 2 * dt
        self.mean = f @ self.mean
        self.cov = f @ self.cov @ f.T + np.diag(q)

    def correct(self, box: np.ndarray) -> None:
        z = _xyxy_to_xyah(box)
        h = max(self.mean[3], 1.0)
        r = np.diag(np.array([_MEAS_STD * h, _MEAS_STD * h, 1e-1, _MEAS_STD * h]) ** 2)
        hm = np.eye(4, 8)
        s = hm @ self.cov @ hm.T + r
        gain = self.cov @ hm.T @ np.linalg.inv(s)
        self.mean = self.mean + gain @ (z - hm @ self.mean)
        self.cov = (np.eye(8) - gain @ hm) @ self.cov

    def box(self) -> Box:
        return _xyah_to_xyxy(self.mean)


# --- tracks -----------------------------------------------------------------------------------


@dataclass
class _TrackState:
    track_id: int
    group: str
    kf: _Kalman
    box: Box  # last matched detection box
    state: TrackState
    first_seen: float
    last_seen: float
    last_predicted: float
    anchor: Box
    anchor_ts: float
    stationary_since: float | None = None
    label_scores: dict[int, float] = field(default_factory=dict)
    recent_scores: deque[float] = field(default_factory=deque)
    medians: deque[tuple[float, float]] = field(default_factory=deque)  # (time, median) within the hold
    confidence: float = 0.0

    def add_score(self, score: float, ts: float, window: int, hold_s: float) -> None:
        """Keep the last `window` detection scores; their median (padded to three, so one strong frame
        alone confirms nothing) is Frigate's computed score. The confidence is the best such median of
        the last `hold_s` seconds: a score wavering around the threshold holds, and a moment of high
        scores (a cone taken for a person) is forgotten after `hold_s`."""
        self.recent_scores.append(score)
        while len(self.recent_scores) > window:
            self.recent_scores.popleft()
        scores = list(self.recent_scores) + [0.0] * max(0, min(3, window) - len(self.recent_scores))
        self.medians.append((ts, statistics.median(scores)))  # ten floats: faster than numpy's
        while self.medians[0][0] < ts - hold_s:
            self.medians.popleft()
        self.confidence = max(m for _, m in self.medians)

    def best_class(self) -> int:
        return max(self.label_scores.items(), key=lambda kv: kv[1])[0]

    def predict_to(self, ts: float) -> None:
        self.kf.predict(ts - self.last_predicted, keep_still=self.stationary_since is not None)
        self.last_predicted = max(self.last_predicted, ts)

    def predicted_box(self) -> Box:
        # Stationary objects are reported where they were seen; the filter only smooths movers.
        return self.box if self.stationary_since is not None else self.kf.box()


class ByteTracker:
    """Tracks objects of one camera. Call `update(detections, ts)` with non-decreasing `ts`.

    `update` returns the live tracks (new, tracked, lost) plus, once, each track removed by this
    call (state REMOVED) so that rules can close what they had open for it.
    """

    def __init__(self, config: TrackerConfig | None = None, operating: np.ndarray | None = None) -> None:
        """`operating`: per class id, the score a detection must also reach to be a high-score one (the
        detector's operating thresholds, when it hands over weaker boxes for the second stage)."""
        self.config = config or TrackerConfig()
        self.operating = operating
        self._tracks: list[_TrackState] = []
        self._next_id = 1
        self._last_ts: float | None = None
        self._group_of_label = {label: "|".join(g) for g in self.config.class_groups for label in g}
        self._multi_label_groups = {"|".join(g) for g in self.config.class_groups if len(g) > 1}
        self._labels: tuple[str, ...] = ()  # the model's class names, from the detections seen

    # Public API ------------------------------------------------------------------------------

    def update(self, detections: Detections, ts: float) -> list[Track]:
        if self._last_ts is not None and ts < self._last_ts:
            raise ValueError(f"timestamps must not go backwards: {ts} < {self._last_ts}")
        self._last_ts = ts
        if detections.labels:
            self._labels = tuple(detections.labels)
        expired = self._expire(ts)
        for t in self._tracks:
            t.predict_to(ts)
        detections, groups = self._one_box_per_object(detections, self._groups(detections))
        high = (detections.confidence >= self.config.high_score) & self._reaches_operating(detections)
        low = (~high) & (detections.confidence >= self.config.low_score)
        high_idx, low_idx = np.flatnonzero(high), np.flatnonzero(low)

        confirmed = [t for t in self._tracks if t.state in (TrackState.TRACKED, TrackState.LOST)]
        unconfirmed = [t for t in self._tracks if t.state == TrackState.NEW]
        matched_tracks: set[int] = set()

        # Stage 1: confirmed tracks (including lost ones, for re-acquisition) vs high-score boxes.
        left_high = self._associate(confirmed, detections, groups, high_idx, self.config.match_iou,
                                    ts, matched_tracks)
        # Stage 2: tracks still unmatched and currently visible vs low-score boxes.
        visible = [t for t in confirmed if id(t) not in matched_tracks and t.state == TrackState.TRACKED]
        self._associate(visible, detections, groups, low_idx, self.config.low_match_iou, ts, matched_tracks)
        # Stage 3: tentative tracks vs the high boxes nobody took; a miss removes them.
        left_high = self._associate(unconfirmed, detections, groups, left_high, self.config.match_iou,
                                    ts, matched_tracks)

        removed = expired + self._age(ts, matched_tracks)
        for i in left_high:
            if detections.confidence[i] >= self.config.new_track_score:
                self._start(detections, int(i), groups[int(i)], ts)
        out = [self._public(t) for t in self._tracks]
        return out + [self._public(t, TrackState.REMOVED) for t in removed]

    def tracks(self) -> list[Track]:
        """Current live tracks without updating (for frames that were not run through the detector)."""
        return [self._public(t) for t in self._tracks]

    # Internals -------------------------------------------------------------------------------

    def _reaches_operating(self, detections: Detections) -> np.ndarray:
        """Which detections reach their class's operating threshold (classes it does not know: all)."""
        if self.operating is None or len(detections.class_id) == 0:
            return np.ones(len(detections.class_id), dtype=bool)
        known = detections.class_id < len(self.operating)
        floor = np.zeros(len(detections.class_id), dtype=np.float32)
        floor[known] = self.operating[detections.class_id[known]]
        return detections.confidence >= floor

    def _one_box_per_object(self, dets: Detections, groups: list[str]) -> tuple[Detections, list[str]]:
        """The detector suppresses duplicates within a class only; within a class group keep the best box."""
        grouped = np.array([i for i, g in enumerate(groups) if g in self._multi_label_groups], dtype=np.int64)
        if len(grouped) < 2:  # the rest (persons...) the detector's own NMS has seen to
            return dets, groups
        index = {g: k for k, g in enumerate(dict.fromkeys(groups[int(i)] for i in grouped))}
        kept = grouped[nms(dets.xyxy[grouped], dets.confidence[grouped],
                           np.array([index[groups[int(i)]] for i in grouped]), self.config.duplicate_iou)]
        if len(kept) == len(grouped):
            return dets, groups
        keep = np.sort(np.concatenate([np.setdiff1d(np.arange(len(groups)), grouped), kept]))
        return dets[keep], [groups[int(i)] for i in keep]

    def _groups(self, detections: Detections) -> list[str]:
        names = detections.label_names()
        return [self._group_of_label.get(n, n) for n in names]

    def _associate(self, tracks: Sequence[_TrackState], dets: Detections, groups: Sequence[str],
                   det_idx: np.ndarray, min_iou: float, ts: float, matched: set[int]) -> np.ndarray:
        """Match `tracks` to detections `det_idx`; update the matched; return the unmatched det indices."""
        if len(tracks) == 0 or len(det_idx) == 0:
            return det_idx
        track_boxes = np.array([t.predicted_box() for t in tracks], dtype=np.float32)
        iou = iou_matrix(track_boxes, dets.xyxy[det_idx])
        same = np.array([[t.group == groups[int(j)] for j in det_idx] for t in tracks])
        iou = np.where(same, iou, 0.0)
        taken: set[int] = set()
        for r, c in greedy_match(iou, min_iou):
            j = int(det_idx[c])
            self._apply(tracks[r], dets.xyxy[j], float(dets.confidence[j]), int(dets.class_id[j]), ts)
            matched.add(id(tracks[r]))
            taken.add(c)
        return np.array([j for c, j in enumerate(det_idx) if c not in taken], dtype=np.int64)

    def _apply(self, t: _TrackState, xyxy: np.ndarray, score: float, class_id: int, ts: float) -> None:
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        box: Box = (x1, y1, x2, y2)
        t.kf.correct(np.asarray(xyxy, dtype=np.float64))
        t.box, t.last_seen = box, ts
        t.state = TrackState.TRACKED
        t.label_scores[class_id] = t.label_scores.get(class_id, 0.0) + score
        t.add_score(score, ts, self.config.score_window, self.config.score_hold_s)
        self._update_stationarity(t, box, ts)

    def _update_stationarity(self, t: _TrackState, box: Box, ts: float) -> None:
        if iou(box, t.anchor) >= self.config.stationary_iou:
            if t.stationary_since is None and ts - t.anchor_ts >= self.config.stationary_min_s:
                t.stationary_since = t.anchor_ts
        else:
            t.anchor, t.anchor_ts, t.stationary_since = box, ts, None

    def _expire(self, ts: float) -> list[_TrackState]:
        """Drop the tracks not seen for longer than the grace window before matching: after a gap in
        time (a paused agent, a stalled camera) nobody seen before the gap may be re-acquired and
        keep their timers, however few frames the gap spans. Returns the reportable ones."""
        gone = [t for t in self._tracks if ts - t.last_seen > self.config.lost_grace_s]
        if gone:
            self._tracks = [t for t in self._tracks if ts - t.last_seen <= self.config.lost_grace_s]
        return [t for t in gone if t.state != TrackState.NEW]

    def _age(self, ts: float, matched: set[int]) -> list[_TrackState]:
        keep: list[_TrackState] = []
        removed: list[_TrackState] = []
        for t in self._tracks:
            if id(t) in matched:
                keep.append(t)
            elif t.state == TrackState.NEW or ts - t.last_seen > self.config.lost_grace_s:
                # A tentative track that misses its second look was most likely a false positive.
                removed.append(t)
            else:
                t.state = TrackState.LOST
                keep.append(t)
        self._tracks = keep
        # Tentative tracks were never reported as real objects, so they vanish silently.
        return [t for t in removed if t.state != TrackState.NEW]

    def _start(self, dets: Detections, i: int, group: str, ts: float) -> None:
        x1, y1, x2, y2 = (float(v) for v in dets.xyxy[i])
        box: Box = (x1, y1, x2, y2)
        state = _TrackState(
            track_id=self._next_id, group=group, kf=_Kalman.start(np.asarray(box, dtype=np.float64)),
            box=box, state=TrackState.NEW, first_seen=ts, last_seen=ts,
            last_predicted=ts, anchor=box, anchor_ts=ts,
            label_scores={int(dets.class_id[i]): float(dets.confidence[i])},
        )
        state.add_score(float(dets.confidence[i]), ts, self.config.score_window, self.config.score_hold_s)
        self._tracks.append(state)
        self._next_id += 1

    def _public(self, t: _TrackState, state: TrackState | None = None) -> Track:
        class_id = t.best_class()
        labels = self._labels
        label = labels[class_id] if 0 <= class_id < len(labels) else str(class_id)
        return Track(track_id=t.track_id, class_id=class_id, label=label,
                     xyxy=t.box if t.state == TrackState.TRACKED else t.predicted_box(),
                     score=t.confidence, state=state or t.state, first_seen=t.first_seen,
                     last_seen=t.last_seen, stationary_since=t.stationary_since)
