"""The plate's background colour (blue, yellow, green, white, black).

The plate's pixels split into two clusters, background and characters; the background is the larger.
Its mean colour decides: little chroma is white (bright) or black (dark), else its hue. Hue holds up
in the dark and when over-exposed where per-pixel saturation thresholds do not (a blue plate at night
has pixels of value 10-40; an over-exposed one turns cyan). The text decides where it implies a
colour: only new-energy numbers are green, police plates white, HK/Macao plates black.
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from protocol.plates import PlateColour, expected_colour, is_new_energy

_SAMPLE_WH = (96, 32)  # the plate is shrunk to this before clustering: colour needs no detail
_MIN_CHROMA = 0.2  # (max - min) / max of the background below this: white or black
_WHITE_VALUE = 100
# Hue bands in degrees: yellow and green plates; everything else with chroma is blue (over-exposed
# blue turns cyan, about 170 degrees; new-energy green is about 150).
_YELLOW = (20.0, 75.0)
_GREEN = (75.0, 158.0)


def background_bgr(plate: np.ndarray) -> np.ndarray:
    """Mean BGR of the larger of two colour clusters inside the plate (its frame and bolts left out)."""
    h, w = plate.shape[:2]
    inner = plate[h // 6: h - h // 6 or h, w // 12: w - w // 12 or w]
    pixels = cv2.resize(inner, _SAMPLE_WH, interpolation=cv2.INTER_AREA).reshape(-1, 3).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    _, labels, centres = cv2.kmeans(pixels, 2, None, criteria, 2, cv2.KMEANS_PP_CENTERS)  # type: ignore[call-overload]
    return centres[int(np.bincount(labels.ravel(), minlength=2).argmax())]


def pixel_colour(plate: np.ndarray, *, new_energy: bool = True) -> PlateColour:
    """The background colour of an upright BGR plate crop; green only when `new_energy` may be."""
    b, g, r = (float(v) for v in background_bgr(plate))
    hue, chroma, value = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
    if chroma < _MIN_CHROMA:
        return PlateColour.WHITE if value * 255 >= _WHITE_VALUE else PlateColour.BLACK
    degrees = hue * 360
    if _YELLOW[0] <= degrees < _YELLOW[1]:
        return PlateColour.YELLOW
    if _GREEN[0] <= degrees < _GREEN[1] and new_energy:
        return PlateColour.GREEN
    return PlateColour.BLUE


def plate_colour(plate: np.ndarray, text: str) -> PlateColour:
    """The colour the text implies, else the one the pixels show."""
    return expected_colour(text) or pixel_colour(plate, new_energy=is_new_energy(text))
