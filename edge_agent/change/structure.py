"""Comparing two views by structure, not brightness.

`structure(image)` is the gradient of log(image) per colour channel. A global gain (auto-exposure, a
cloud), a white-balance shift (sodium lights) or the inside of a shadow multiplies each channel by a
smooth factor, which adds a constant to the log and nothing to its gradient; an object adds or hides
edges. `difference(a, b)` is the largest channel's gradient change, smoothed 3x3. Pure numpy/OpenCV.
"""

from __future__ import annotations

import cv2
import numpy as np

LOG_OFFSET = 16.0  # added before the log: dark pixels' sensor noise would dominate log(0..10)


def structure(image_bgr: np.ndarray) -> np.ndarray:
    """(2, H, W, 3) float32: x and y gradients of log(image + LOG_OFFSET) per channel."""
    log = np.log(image_bgr.astype(np.float32) + LOG_OFFSET)
    gx = cv2.Sobel(log, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(log, cv2.CV_32F, 0, 1, ksize=3)
    return np.stack([gx, gy]) * np.float32(1 / 8)


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) float32 structural difference of two `structure` results."""
    per_channel = np.abs(a[0] - b[0]) + np.abs(a[1] - b[1])
    return cv2.blur(_channel_max(per_channel), (3, 3))


def edge_energy(s: np.ndarray) -> np.ndarray:
    """(H, W) gradient strength of one `structure` result (largest channel)."""
    return _channel_max(np.abs(s[0]) + np.abs(s[1]))


def _channel_max(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W): elementwise, several times faster than `.max(axis=2)` on small images."""
    return np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])


def outline(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """The band `width` pixels around a region's border (inside and out): where an object's edges are."""
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    m = mask.astype(np.uint8)
    return (cv2.dilate(m, kernel) - cv2.erode(m, kernel)).astype(bool)


def appeared(current: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the change in `mask` added edges (something set down) rather than removed them (something
    that stood there when the reference was learned went away, leaving a "ghost")."""
    band = outline(mask)
    if not band.any():
        return True
    return float(edge_energy(current)[band].mean()) >= float(edge_energy(reference)[band].mean())
