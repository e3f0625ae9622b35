"""Value types that flow through the edge pipeline: Frame -> Detections -> Track.

Times are seconds (float, monotonic or epoch as the caller chooses, but one clock per camera),
never frame counts. Boxes are pixel `xyxy` in the frame they were detected on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np

from protocol.messages import ProblemEvent


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded video frame.

    `image` is HxWx3 uint8 BGR (OpenCV order). `ts` is the capture time in epoch seconds.
    """

    camera_id: str
    index: int
    ts: float
    image: np.ndarray

    @property
    def resolution_wh(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])


def _check_shape(name: str, array: np.ndarray, expected: tuple[int | None, ...]) -> None:
    ok = array.ndim == len(expected) and all(
        e is None or e == a for e, a in zip(expected, array.shape, strict=True)
    )
    if not ok:
        shown = tuple("N" if e is None else e for e in expected)
        raise ValueError(f"{name} must have shape {shown}, got {array.shape}")


@dataclass(frozen=True)
class Detections:
    """N detections as parallel arrays (supervision-style), immutable.

    xyxy: (N, 4) float32 pixel corners; confidence: (N,) float32; class_id: (N,) int32;
    tracker_id: (N,) int64, -1 where untracked. `labels` maps class_id -> name for the model.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray = field(default=None)  # type: ignore[arg-type]  # None means untracked: __post_init__ makes it -1s
    labels: Sequence[str] = ()

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        n = xyxy.shape[0] if xyxy.ndim == 2 else -1
        _check_shape("xyxy", xyxy, (None, 4))
        confidence = np.asarray(self.confidence, dtype=np.float32)
        class_id = np.asarray(self.class_id, dtype=np.int32)
        tracker = (np.full(n, -1, dtype=np.int64) if self.tracker_id is None
                   else np.asarray(self.tracker_id, dtype=np.int64))
        _check_shape("confidence", confidence, (n,))
        _check_shape("class_id", class_id, (n,))
        _check_shape("tracker_id", tracker, (n,))
        for name, arr in (("xyxy", xyxy), ("confidence", confidence), ("class_id", class_id),
                          ("tracker_id", tracker)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "labels", tuple(self.labels))

    @classmethod
    def empty(cls, labels: Sequence[str] = ()) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32),
                   labels=labels)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: np.ndarray | slice | int) -> Detections:
        """Select with a boolean mask, an index array or a slice; returns a new Detections."""
        if isinstance(index, int):
            index = np.array([index])
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index],
                          self.tracker_id[index], self.labels)

    def label_names(self) -> list[str]:
        return [self.labels[c] if 0 <= c < len(self.labels) else str(c) for c in self.class_id]

    def with_tracker_ids(self, tracker_id: np.ndarray) -> Detections:
        return Detections(self.xyxy, self.confidence, self.class_id, tracker_id, self.labels)

    def bottom_center(self) -> np.ndarray:
        """(N, 2) ground-contact anchors: the middle of each box's bottom edge."""
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, self.xyxy[:, 3]], axis=1)

    @classmethod
    def merge(cls, parts: Sequence[Detections]) -> Detections:
        if not parts:
            return cls.empty()
        labels = parts[0].labels
        return cls(np.concatenate([p.xyxy for p in parts]), np.concatenate([p.confidence for p in parts]),
                   np.concatenate([p.class_id for p in parts]), np.concatenate([p.tracker_id for p in parts]),
                   labels)


class TrackState(StrEnum):
    """Lifecycle of a track (after ultralytics' basetrack): new -> tracked <-> lost -> removed."""

    NEW = "new"
    TRACKED = "tracked"
    LOST = "lost"  # unmatched, inside the re-acquisition grace window: timers keep running
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class Track:
    """One tracked object as the rules see it. Times in seconds on the camera's clock."""

    track_id: int
    class_id: int
    label: str
    xyxy: tuple[float, float, float, float]  # pixels, last matched (or predicted while lost)
    score: float  # the track's confidence: its best median detection score (TrackerConfig.score_window)
    state: TrackState
    first_seen: float
    last_seen: float  # last time a detection matched
    stationary_since: float | None = None  # None while the object moves

    def stationary_for(self, now: float) -> float:
        return 0.0 if self.stationary_since is None else max(0.0, now - self.stationary_since)


@dataclass(frozen=True, slots=True)
class ProblemUpdate:
    """What a rule emits before evidence is attached; `evidence` turns it into a wire ProblemEvent."""

    problem_id: str  # stable for one problem instance on one camera
    class_id: str  # problem catalog id
    state: str  # protocol.messages.ProblemState value
    camera_id: str
    zone: str | None
    xyxy: tuple[float, float, float, float]  # pixels, union box of the objects involved
    score: float
    labels: tuple[str, ...]
    track_ids: tuple[int, ...]
    first_seen: float
    observed_at: float
    dwell_s: float
    object_count: int = 1
    # Change rules: the clear view of the whole frame (any size), so evidence shows before beside after.
    reference_image: np.ndarray | None = field(default=None, compare=False, repr=False)


class EventSink(Protocol):
    """Where finished problem events go: a folder for replays, the delivery outbox in production.

    `media` maps each `MediaRef.name` in `event.media` to its bytes. Must be durable on return.
    """

    def submit(self, event: ProblemEvent, media: Mapping[str, bytes]) -> None: ...
