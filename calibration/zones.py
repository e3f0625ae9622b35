"""Draw zone polygons and lines onto a snapshot, to check a camera config against what the camera sees.

Takes anything shaped like a zone config (id, kind, polygon or line in 0-1 of the frame), so it needs
no edge-agent import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

_PALETTE = [(0, 0, 255), (0, 200, 255), (255, 128, 0), (0, 200, 0), (255, 0, 255), (255, 255, 0),
            (128, 0, 255), (0, 128, 128)]  # BGR


class ZoneLike(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def polygon(self) -> Sequence[Sequence[float]] | None: ...

    @property
    def line(self) -> Sequence[Sequence[float]] | None: ...


def draw_zones(image: np.ndarray, zones: Sequence[ZoneLike], *, alpha: float = 0.25) -> np.ndarray:
    """A copy of the BGR image with each polygon zone filled translucently and outlined, each line zone
    drawn, and every zone labelled with its id and kind."""
    import cv2

    h, w = image.shape[:2]
    scale = np.array([w, h], dtype=np.float64)
    shapes = []
    for i, zone in enumerate(zones):
        shape = zone.polygon if zone.polygon is not None else zone.line
        if shape is not None:
            pts = np.round(np.asarray(shape, dtype=np.float64) * scale).astype(np.int32)
            shapes.append((zone, pts, _PALETTE[i % len(_PALETTE)]))
    overlay = image.copy()
    for zone, pts, color in shapes:
        if zone.polygon is not None:
            cv2.fillPoly(overlay, [pts], color)
    out = cv2.addWeighted(overlay, alpha, image, 1 - alpha, 0)  # translucent fills, crisp outlines on top
    for zone, pts, color in shapes:
        if zone.polygon is not None:
            cv2.polylines(out, [pts], True, color, 2, cv2.LINE_AA)
        else:
            cv2.line(out, tuple(int(v) for v in pts[0]), tuple(int(v) for v in pts[1]), color, 3, cv2.LINE_AA)
        kind = getattr(zone, "kind", "")
        label = f"{zone.id} ({getattr(kind, 'value', kind)})" if kind else zone.id
        org = (int(pts[:, 0].min()) + 4, max(int(pts[:, 1].min()) + 18, 18))
        cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.55, color, 1, cv2.LINE_AA)
    return out
