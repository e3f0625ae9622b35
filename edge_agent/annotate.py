"""Drawing on frames: detection boxes and zone outlines. Returns copies; never touches the original.

Labels use the project's shipped CJK font (`protocol.fonts.text`), so Chinese class names render on boxes
that have no CJK font installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import cv2
import numpy as np

from edge_agent.types import Detections
from protocol.fonts.text import draw_text, label_size_px, text_size

_PALETTE = [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
            (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0)]


def color_for(class_id: int) -> tuple[int, int, int]:
    return _PALETTE[class_id % len(_PALETTE)]


def draw_box(image: np.ndarray, xyxy: Sequence[float], text: str, color: tuple[int, int, int]) -> None:
    """Draw one labelled box in place (callers pass a copy)."""
    x1, y1, x2, y2 = (round(v) for v in xyxy)
    thickness = max(1, round(min(image.shape[:2]) / 300))
    cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness)
    if text:
        size = label_size_px(image.shape)
        pad = max(1, size // 8)
        _, th = text_size(text, size)
        top = y1 - th - 2 * pad if y1 - th - 2 * pad >= 0 else y1  # above the box, or inside it at the top
        draw_text(image, text, (x1, top), size, (255, 255, 255), background=color, padding=pad)

def draw_detections(image: np.ndarray, detections: Detections) -> np.ndarray:
    out = image.copy()
    for label, score, box, cid in zip(detections.label_names(), detections.confidence, detections.xyxy,
                                      detections.class_id, strict=True):
        draw_box(out, box, f"{label} {score:.2f}", color_for(int(cid)))
    return out


def draw_polygon(image: np.ndarray, points_px: np.ndarray, text: str = "",
                 color: tuple[int, int, int] = (0, 200, 255)) -> None:
    """Outline a zone in place, with a translucent fill so the scene stays visible."""
    pts = np.asarray(points_px, dtype=np.int32).reshape(-1, 1, 2)
    overlay = image.copy()
    cv2.fillPoly(overlay, [pts], color)
    cv2.addWeighted(overlay, 0.15, image, 0.85, 0, dst=image)
    cv2.polylines(image, [pts], True, color, 2, cv2.LINE_AA)
    if text:
        x, y = pts[:, 0, 0].min(), pts[:, 0, 1].min()
        size = label_size_px(image.shape)
        draw_text(image, text, (int(x) + 3, int(y) + 3), round(size * 0.8), color)


def draw_time(image: np.ndarray, when: datetime) -> None:
    """The frame's time (when it was made, with its UTC offset) in the bottom-left corner, in place."""
    text = when.isoformat(sep=" ", timespec="milliseconds")
    size = label_size_px(image.shape)
    _, th = text_size(text, size)
    pad = max(1, size // 8)
    draw_text(image, text, (0, image.shape[0] - th - 2 * pad), size, (255, 255, 255), background=(0, 0, 0),
              padding=pad)
