"""Pre-labels: the detector in service proposes boxes on sampled frames, so a reviewer only corrects them.

The boxes are the detector's own (its labels, its scores above `min_score`), normalised to the frame; a
student model trained on the corrected frames learns the bureau's views (steep overhead cameras, say),
which the default model gets wrong. Nothing here decides what is true: proposals enter the labelling
queue (hub.releases.sampled) and become training data only once a reviewer saved them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

import numpy as np


class _Detections(Protocol):
    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    labels: Sequence[str]


class DetectorLike(Protocol):
    def detect(self, images: Sequence[np.ndarray]) -> Sequence[Any]: ...


def proposals(detector: DetectorLike, image: np.ndarray, *, min_score: float = 0.35,
              labels: Collection[str] | None = None) -> list[dict[str, Any]]:
    """The detector's boxes on one BGR frame: [{"label", "box": [x1, y1, x2, y2] in 0-1, "score"}], best first."""
    height, width = image.shape[:2]
    found: _Detections = detector.detect([image])[0]
    out = []
    for (x1, y1, x2, y2), score, cls in zip(found.xyxy, found.confidence, found.class_id, strict=True):
        label = str(found.labels[int(cls)])
        if score < min_score or (labels is not None and label not in labels):
            continue
        box = [max(0.0, float(x1) / width), max(0.0, float(y1) / height),
               min(1.0, float(x2) / width), min(1.0, float(y2) / height)]
        if box[0] < box[2] and box[1] < box[3]:
            out.append({"label": label, "box": [round(v, 5) for v in box], "score": round(float(score), 4)})
    return sorted(out, key=lambda p: -p["score"])
