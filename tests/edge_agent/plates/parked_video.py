"""A camera watching a parked car, made from a still: the fixture photo repeated with sensor noise."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

STREET = "plates/hyperlpr_street_green.jpg"  # the white car's plate is 苏E·D51712 (green)
STREET_PLATE = "苏E·D51712"
# The no-parking zone: the lower right of the street scene, where the white car stands.
STREET_ZONE = {"id": "np_kerb", "kind": "no_parking", "polygon": [[0.25, 0.25], [1, 0.25], [1, 1], [0.25, 1]]}


def parked_car_video(still: Path, out: Path, *, seconds: float = 20.0, fps: float = 2.0, seed: int = 0) -> Path:
    """An MJPEG .avi of `still` for `seconds`, each frame with its own +-3 grey-level noise."""
    image = cv2.imread(str(still), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{still}: not an image")
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, (image.shape[1], image.shape[0]))
    rng = np.random.default_rng(seed)
    for _ in range(round(seconds * fps)):
        noisy = image.astype(np.int16) + rng.integers(-3, 4, image.shape, dtype=np.int16)
        writer.write(np.clip(noisy, 0, 255).astype(np.uint8))
    writer.release()
    return out
