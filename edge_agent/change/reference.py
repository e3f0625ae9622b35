"""The clear view of one camera: learned at start-up, followed slowly where nothing changed, re-taken
where told (a zone verified clear, a "ghost" of something that went away).

Kept in colour at `reference_width` pixels: the analysis compares against it scaled down, and its crops
are the "before" half of the evidence.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np

from edge_agent.change.params import ChangeConfig


class Reference:
    def __init__(self, config: ChangeConfig) -> None:
        self.config = config
        self.image: np.ndarray | None = None  # (H, W, 3) float32 BGR at the reference size
        self._samples: list[np.ndarray] = []
        self._last_sample: float | None = None

    @property
    def ready(self) -> bool:
        return self.image is not None

    def learn(self, image: np.ndarray, masked: np.ndarray, now: float) -> bool:
        """Collect `learn_samples` frames over `learn_s`; the first reference is their per-pixel median
        with masked pixels (people, vehicles) left out. True once the reference exists."""
        if self.image is not None:
            return True
        period = self.config.learn_s / self.config.learn_samples
        if self._last_sample is not None and now - self._last_sample < period * 0.95:
            return False
        self._last_sample = now
        sample = image.astype(np.float32)
        sample[masked] = np.nan
        self._samples.append(sample)
        if len(self._samples) < self.config.learn_samples:
            return False
        stack = np.stack(self._samples)
        self._samples = []
        with warnings.catch_warnings():  # all-NaN pixels (always covered) fall back to the last frame
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(stack, axis=0)
        self.image = np.where(np.isnan(median), image.astype(np.float32), median).astype(np.float32)
        return True

    def as_uint8(self) -> np.ndarray:
        if self.image is None:
            raise RuntimeError("the reference is not learned yet")
        return np.clip(self.image + 0.5, 0, 255).astype(np.uint8)

    def adapt(self, image: np.ndarray, where: np.ndarray, dt: float) -> None:
        """Move the reference toward `image` at `where` (unchanged, unmasked pixels) with time constant
        `adapt_s`, so sun and seasons do not accumulate into differences."""
        if self.image is None or self.config.adapt_s is None or dt <= 0:
            return
        rate = min(1.0, dt / self.config.adapt_s)
        cv2.accumulateWeighted(image, self.image, rate, mask=where.astype(np.uint8))

    def retake(self, image: np.ndarray, where: np.ndarray) -> None:
        """Adopt `image` as the clear view at `where`."""
        if self.image is None:
            return
        np.copyto(self.image, image, where=where[..., None], casting="unsafe")
