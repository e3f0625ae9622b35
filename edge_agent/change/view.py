"""One analysed frame as the change rules see it (analysis-resolution arrays)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from edge_agent.evidence import crop_box, scale_box
from edge_agent.geometry import Box
from edge_agent.types import Frame


@dataclass(frozen=True)
class ChangeView:
    now: float
    frame: Frame
    age: np.ndarray  # (h, w) seconds each pixel has differed while looking the same; NaN: matches the reference
    differs: np.ndarray  # (h, w) bool: differs from the reference now (hysteresis threshold)
    masked: np.ndarray  # (h, w) bool: under a track of a mover (person, vehicle)
    current: np.ndarray  # structure now
    reference: np.ndarray  # structure of the reference
    diff: np.ndarray  # (h, w) structural difference
    image: np.ndarray  # (h, w, 3) uint8 BGR: the frame at the analysis size
    reference_small: np.ndarray  # (h, w, 3) float32 BGR: the clear view at the analysis size
    clear_view: Callable[[], np.ndarray]  # the clear view at the reference size, (H', W', 3) uint8

    @cached_property
    def reference_image(self) -> np.ndarray:
        return self.clear_view()

    @property
    def scale(self) -> tuple[float, float]:
        """Analysis pixels -> frame pixels."""
        fw, fh = self.frame.resolution_wh
        return fw / self.age.shape[1], fh / self.age.shape[0]

    def frame_box(self, mask: np.ndarray) -> Box:
        """The frame-pixel box of a region given as an analysis-resolution mask."""
        ys, xs = np.nonzero(mask)
        sx, sy = self.scale
        return (float(xs.min() * sx), float(ys.min() * sy), float((xs.max() + 1) * sx), float((ys.max() + 1) * sy))

    def crops(self, box: Box, margin: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
        """(current, reference) BGR crops of the same place, the same size."""
        current = crop_box(self.frame.image, box, margin)
        ref_box = scale_box(box, self.frame.resolution_wh, self.reference_image)
        reference = crop_box(self.reference_image, ref_box, margin)
        return current, cv2.resize(reference, current.shape[1::-1], interpolation=cv2.INTER_LINEAR)
