"""Plates on a whole image (`cityeye plates read`): the detector finds the vehicles, each vehicle's
crop is read; the whole image is read too, since a close-up of a bumper or a car filling the frame is
itself the vehicle and the detector often misses it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.plates.reader import PlateRead, PlateReader
from edge_agent.types import Detections
from protocol.plates import PLATE_LABELS

MIN_VEHICLE_WIDTH = 80  # pixels: a narrower vehicle's plate is a few pixels wide, never legible
VEHICLE_MARGIN = 0.05  # of the box, each side: plates sit at the very edge of a tight box


@dataclass(frozen=True, slots=True)
class ImagePlate:
    read: PlateRead
    xyxy: tuple[float, float, float, float]  # pixels of the whole image


def vehicle_crop(image: np.ndarray, xyxy: Sequence[float]) -> tuple[np.ndarray, tuple[int, int]]:
    """The vehicle with a small margin, and the crop's top-left in the image."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = xyxy
    mx, my = (x2 - x1) * VEHICLE_MARGIN, (y2 - y1) * VEHICLE_MARGIN
    left, top = int(max(0, x1 - mx)), int(max(0, y1 - my))
    right, bottom = int(min(w, x2 + mx + 1)), int(min(h, y2 + my + 1))
    return image[top:bottom, left:right], (left, top)


def read_image(reader: PlateReader, image: np.ndarray, vehicles: Sequence[Sequence[float]]) -> list[ImagePlate]:
    """Every distinct plate on `image`: in each vehicle box wide enough, and on the whole image."""
    found: dict[str, ImagePlate] = {}
    regions = [vehicle_crop(image, box) for box in vehicles if box[2] - box[0] >= MIN_VEHICLE_WIDTH]
    regions.append((image, (0, 0)))
    for crop, (left, top) in regions:
        for read in reader.read(crop):
            x1, y1, x2, y2 = read.xyxy
            placed = ImagePlate(read, (x1 + left, y1 + top, x2 + left, y2 + top))
            if read.text not in found or read.score > found[read.text].read.score:
                found[read.text] = placed
    return sorted(found.values(), key=lambda p: -p.read.score)


def vehicle_boxes(detections: Detections) -> list[tuple[float, float, float, float]]:
    """Boxes of the detections whose label carries a plate (car, truck, bus, motorcycle)."""
    return [(float(b[0]), float(b[1]), float(b[2]), float(b[3]))
            for b, name in zip(detections.xyxy, detections.label_names(), strict=True) if name in PLATE_LABELS]
