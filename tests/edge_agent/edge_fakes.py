"""Stand-ins for the edge pipeline's heavy parts: a scripted detector and synthetic frames."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from edge_agent.types import Detections, Frame

LABELS = ("person", "bicycle", "car", "motorcycle", "bus", "truck", "umbrella", "chair", "dining table")

Box = tuple[float, float, float, float]


class ScriptedDetector:
    """Returns the same (label, box) list for every image, or what `script(image)` returns."""

    max_batch = 8

    def __init__(self, objects: Sequence[tuple[str, Box]] = (),
                 script: Callable[[np.ndarray], Sequence[tuple[str, Box]]] | None = None) -> None:
        self.objects = list(objects)
        self.script = script
        self.calls = 0
        self.images = 0

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.calls += 1
        self.images += len(images)
        out = []
        for image in images:
            objs = self.script(image) if self.script else self.objects
            out.append(Detections(
                xyxy=np.array([b for _, b in objs], dtype=np.float32).reshape(-1, 4),
                confidence=np.full(len(objs), 0.9, dtype=np.float32),
                class_id=np.array([LABELS.index(lbl) for lbl, _ in objs], dtype=np.int32),
                labels=LABELS))
        return out


def textured_frame(w: int = 640, h: int = 480, seed: int = 0) -> np.ndarray:
    """A BGR image of random 8x8 tiles: JPEG keeps it nearly intact, blurring visibly flattens it."""
    rng = np.random.default_rng(seed)
    tiles = rng.integers(0, 255, ((h + 7) // 8, (w + 7) // 8, 3), dtype=np.uint8)
    return np.ascontiguousarray(tiles.repeat(8, axis=0).repeat(8, axis=1)[:h, :w])


def frames(camera_id: str, image: np.ndarray, t0: float, seconds: float, fps: float) -> list[Frame]:
    n = int(seconds * fps) + 1
    return [Frame(camera_id, i, t0 + i / fps, image) for i in range(n)]
