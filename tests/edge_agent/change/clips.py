"""Test footage for change detection, built from real frames of vtest.avi so the truth is known.

`vtest_frames(fps)` reads the real clip (768x576, 79.5 s) at a sampling rate. Scenes are composed on
it by `Scene`: a real object (the yellow litter lying on the grass in the clip's first frame, cut out
of the grass by colour) set down on the plaza for a time, a real walker frozen where he stood (a
person who pauses), the real parked van copied onto the plaza (a car that parks), a global brightness
ramp, a soft shadow band sweeping across, a colour cast, or the whole view shifted (a knocked camera).
Scene edits add hard cast shadows that stand still (`hard_shadow`) and a grey bag on the grey paving
(`grey_bag`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from tests.shared_data import shared_file

Box = tuple[int, int, int, int]

# In the 768x576 frame. The paved plaza (the zone the rules watch in these tests).
PLAZA = [[0.0, 0.38], [0.6, 0.38], [0.75, 0.32], [1.0, 0.5], [1.0, 0.85], [0.45, 0.62], [0.0, 0.45]]
LITTER_SOURCE: Box = (60, 490, 170, 540)  # the yellow litter on the grass, frame 0
LITTER_AT = (430, 280)  # top-left where the tests set it down, on the plaza
WALKER_SOURCE: Box = (244, 217, 288, 314)  # a walker on the plaza in frame 0 (detected as person)
BRIEF_AT = (580, 330)  # where litter lies only briefly: the right of the plaza
VAN_SOURCE: Box = (650, 42, 724, 98)  # the parked white van, top right
VAN_AT = (660, 150)  # where the tests park it: on the road beside the plaza (the detector sees it as a truck)


@lru_cache(maxsize=2)
def vtest_frames(fps: float) -> tuple[np.ndarray, ...]:
    """Every frame of vtest.avi at `fps` (it is 10 fps), read once per process."""
    path = shared_file("video/vtest.avi")
    cap = cv2.VideoCapture(str(path))
    step = max(1, round(10 / fps))
    out = []
    i = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        if i % step == 0:
            image.setflags(write=False)
            out.append(image)
        i += 1
    cap.release()
    return tuple(out)


def litter_cutout() -> tuple[np.ndarray, np.ndarray]:
    """(BGR pixels, bool mask) of the litter lying on the grass in frame 0, grass removed by colour."""
    x1, y1, x2, y2 = LITTER_SOURCE
    crop = vtest_frames(10)[0][y1:y2, x1:x2].copy()
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    grass = (hsv[..., 0] >= 35) & (hsv[..., 0] <= 90) & (hsv[..., 1] > 50) & (hsv[..., 2] < 170)
    mask = cv2.morphologyEx((~grass).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    return crop, mask


def crop_of(frame: np.ndarray, box: Box) -> np.ndarray:
    x1, y1, x2, y2 = box
    return frame[y1:y2, x1:x2].copy()


def paste(image: np.ndarray, patch: np.ndarray, at: tuple[int, int], mask: np.ndarray | None = None) -> None:
    x, y = at
    h, w = patch.shape[:2]
    region = image[y:y + h, x:x + w]
    if mask is None:
        region[:] = patch
    else:
        region[mask] = patch[mask]


@dataclass
class Scene:
    """What happens on top of the real clip; every time in seconds from its start."""

    litter: tuple[float, float] | None = None  # (set down, picked up)
    litter_at: tuple[int, int] = LITTER_AT
    brief: tuple[float, float] | None = None  # the same litter at BRIEF_AT for a moment (picked up again)
    pause: tuple[float, float] | None = None  # the walker of frame 0 stands where he was
    van: float | None = None  # from then on the van stands on the plaza
    ramp: float = 0.0  # brightness dips by this fraction mid-clip (auto exposure, clouds)
    shadow: tuple[float, float] | None = None  # a soft shadow band sweeps left to right over this time
    rain: tuple[float, float] | None = None  # rain streaks and wet, darker ground over this time
    cast: tuple[float, float] | None = None  # a warm colour cast (sodium lights) over this time
    jump: float | None = None  # from then on the picture is 30% brighter (an auto-exposure jump)
    shift: tuple[float, float] | None = None  # the view is shifted and turned (knocked, then set back)
    edits: list[Callable[[np.ndarray, float], None]] = field(default_factory=list)

    def frames(self, fps: float, seconds: float | None = None) -> list[tuple[float, np.ndarray]]:
        base = vtest_frames(fps)
        n = len(base) if seconds is None else min(len(base), int(seconds * fps))
        litter, litter_mask = litter_cutout()
        walker = crop_of(vtest_frames(10)[0], WALKER_SOURCE)
        van = crop_of(vtest_frames(10)[0], VAN_SOURCE)
        duration = len(base) / fps
        out = []
        for i in range(n):
            t = i / fps
            image = base[i].copy()
            if self.pause and self.pause[0] <= t < self.pause[1]:
                paste(image, walker, WALKER_SOURCE[:2])
            if self.van is not None and t >= self.van:
                paste(image, van, VAN_AT)
            if self.litter and self.litter[0] <= t < self.litter[1]:
                paste(image, litter, self.litter_at, litter_mask)
            if self.brief and self.brief[0] <= t < self.brief[1]:
                paste(image, litter, BRIEF_AT, litter_mask)
            gain = np.ones(image.shape[:2], np.float32)
            if self.jump is not None and t >= self.jump:
                gain *= 1.3
            if self.ramp:
                gain *= 1.0 - self.ramp * np.sin(np.pi * t / duration)
            if self.shadow and self.shadow[0] <= t < self.shadow[1]:
                gain *= shadow_band(image.shape[:2], (t - self.shadow[0]) / (self.shadow[1] - self.shadow[0]))
            tint = np.array([0.75, 0.95, 1.2], np.float32) if self.cast and self.cast[0] <= t < self.cast[1] else 1.0
            raining = self.rain is not None and self.rain[0] <= t < self.rain[1]
            if raining:
                gain *= 0.85
            image = np.clip(image * gain[..., None] * tint, 0, 255).astype(np.uint8)
            if raining:
                rain_streaks(image, seed=i)
            if self.shift and self.shift[0] <= t < self.shift[1]:
                h, w = image.shape[:2]
                turn = cv2.getRotationMatrix2D((w / 2, h / 2), 4.0, 1.0)
                turn[:, 2] += (40, 25)
                image = cv2.warpAffine(image, turn, (w, h), borderMode=cv2.BORDER_REFLECT)
            for edit in self.edits:
                edit(image, t)
            out.append((t, image))
        return out


def rain_streaks(image: np.ndarray, seed: int, drops: int = 250) -> None:
    """Short light streaks falling at a slant, new ones every frame (rain seen by a camera)."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    streaks = image.copy()
    for x, y in zip(rng.integers(0, w, drops), rng.integers(0, h, drops), strict=True):
        cv2.line(streaks, (int(x), int(y)), (int(x) + 3, int(y) + 14), (215, 215, 215), 1, cv2.LINE_AA)
    cv2.addWeighted(streaks, 0.6, image, 0.4, 0, dst=image)


def shadow_band(shape_hw: tuple[int, int], progress: float, width: int = 240, depth: float = 0.45,
                softness: float = 6.0) -> np.ndarray:
    """Gain of a vertical shadow band (`depth` darker, edges blurred `softness` px) whose left edge has
    moved `progress` (0-1) of the way from off the left side to off the right side."""
    h, w = shape_hw
    left = int(-width + progress * (w + width))
    band = np.zeros((h, w), np.float32)
    band[:, max(0, left):max(0, min(w, left + width))] = 1.0
    band = cv2.GaussianBlur(band, (0, 0), softness)
    return 1.0 - depth * band


# Hard cast shadows that stand still (in the 768x576 frame): a lamp post's long thin shadow across the
# plaza (k about 0.7) and a building edge's shadow over the plaza's right part (k about 0.43). Each is
# (polygon, gain per BGR channel): a little less dark in blue (skylight fills shadows).
POLE_SHADOW = ([(424, 378), (438, 372), (186, 238), (174, 243)], (0.74, 0.7, 0.66))
BUILDING_SHADOW = ([(520, 250), (768, 250), (768, 480), (640, 440)], (0.48, 0.42, 0.38))
ROCK_SOURCE: Box = (160, 248, 196, 278)  # the grey rock on the grass, frame 0
BAG_AT = (360, 280)  # where the tests set a grey bag down, on the grey paving
BAG_WH = (64, 52)


def hard_shadow(polygon: list[tuple[int, int]], gain: tuple[float, float, float],
                during: tuple[float, float]) -> Callable[[np.ndarray, float], None]:
    """A Scene edit: over `during`, the ground inside `polygon` is multiplied by `gain` (sharp edge)."""
    mask = np.zeros((576, 768), np.uint8)
    cv2.fillPoly(mask, [np.array(polygon, np.int32)], 1)
    inside = mask.astype(bool)
    factor = np.array(gain, np.float32)

    def edit(image: np.ndarray, t: float) -> None:
        if during[0] <= t < during[1]:
            image[inside] = np.clip(image[inside] * factor, 0, 255).astype(np.uint8)
    return edit


def grey_bag(during: tuple[float, float], at: tuple[int, int] = BAG_AT) -> Callable[[np.ndarray, float], None]:
    """A Scene edit: a grey, textured bag set down over `during`: a tied bag's outline (64x52 px) filled
    with the real grey rock's texture of frame 0, its colour removed and its brightness matched to the
    paving where it lies: what colour alone cannot tell from the ground."""
    frame0 = vtest_frames(10)[0]
    w, h = BAG_WH
    rock = cv2.cvtColor(crop_of(frame0, ROCK_SOURCE), cv2.COLOR_BGR2GRAY)[6:24, 8:30]  # inside the rock
    texture = cv2.resize(rock, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2 + 6), (w // 2 - 2, h // 2 - 8), 0, 0, 360, 1, -1)  # the body
    cv2.fillPoly(mask, [np.array([(w // 2 - 6, 2), (w // 2 + 6, 2), (w // 2 + 3, 14), (w // 2 - 3, 14)],
                                 np.int32)], 1)  # the knot
    inside = mask.astype(bool)
    x, y = at
    paving = float(frame0[y:y + h, x:x + w][inside].mean())
    relief = texture / float(texture[inside].mean()) - 1.0  # the rock's shading, a little softer: a bag's folds
    grey = np.clip(paving * (1.0 + 0.8 * relief), 0, 255).astype(np.uint8)
    bag = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)

    def edit(image: np.ndarray, t: float) -> None:
        if during[0] <= t < during[1]:
            paste(image, bag, at, inside)
    return edit
