"""Telling a cast shadow that stands still from an object.

A hard shadow (a pole's, a building edge's) that stays past the dwell is a new edge on the ground, so
the structure comparison sees a change. But a shadow only multiplies the ground by a factor: around
its edge the ratio now/reference takes two near-constant values per channel (the lit side's, about 1
or the global light change, and the shadowed side's, k < 1, often a little bluer), and the ground's
texture under the shadow is the reference's texture scaled. An object brings its own look: the ratio
varies from pixel to pixel with the object's and the ground's textures, and the texture under it does
not follow the reference's. `is_cast_shadow` fits the two-level gain model on the neighbourhood of a
region and says whether it explains it: the two gains far apart against their spread, most pixels
within TOLERANCE of their side's gain in every channel, and, where the shaded ground is textured, its
texture correlated with the reference's. On the vtest clips (tests/edge_agent/change): shadows with
k 0.43-0.7 separate 17-160 spreads and fit 84-95% of pixels; a grey bag on grey paving 3.4 and
66-73%, the yellow litter 9.3 and 51%.

Limit: a flat, untextured dark object on flat, untextured ground with a sharp outline is
indistinguishable from a shadow by the image alone, and is taken for one.
"""

from __future__ import annotations

import cv2
import numpy as np

RATIO_OFFSET = 1.0  # added to both images before the ratio: avoids log(0); small so a gain stays constant
NEAR = 2  # the neighbourhood: the region grown by this many analysis pixels (both sides of an edge)
MIN_PIXELS = 24  # fewer visible pixels than this in the neighbourhood: no verdict (kept as an object)
MIN_DARKENING = np.log(0.85)  # the shadowed side is at least 15% darker than the lit side
MAX_DARKENING = np.log(0.2)  # ... and not more than 5 times darker (deeper is not a daylight shadow)
TOLERANCE = 0.12  # a pixel fits its side's gain when every channel is within this (log units, ~12%)
MIN_EXPLAINED = 0.8  # share of the neighbourhood the two gains must explain (the rest: the edge's blur)
MIN_SEPARATION = 8.0  # the two gains lie this many typical deviations apart (two sharp peaks, not a spread)
MIN_SIDE = 0.15  # each side holds at least this share of the neighbourhood
TEXTURED = 24.0  # grey-level spread above which the ground's texture under the shadow outweighs the sensor noise
MIN_TEXTURE_NCC = 0.5  # the texture under the shadow must correlate with the reference's at least this much


def _two_levels(values: np.ndarray) -> tuple[float, float, np.ndarray]:
    """1-D two-means: (low level, high level, mask of values nearer the low one)."""
    lo, hi = np.percentile(values, (10, 90))
    low = values < (lo + hi) / 2
    for _ in range(6):
        if low.all() or not low.any():
            break
        lo, hi = float(np.median(values[low])), float(np.median(values[~low]))
        new = values < (lo + hi) / 2
        if np.array_equal(new, low):
            break
        low = new
    return float(lo), float(hi), low


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / den if den > 0 else 0.0


def is_cast_shadow(current: np.ndarray, reference: np.ndarray, region: np.ndarray, masked: np.ndarray) -> bool:
    """Whether `region` (bool, analysis size) is explained by a cast shadow: around it, `current` (BGR,
    analysis size) is `reference` (same size) times one gain on one side and a darker gain on the other,
    with the reference's texture kept under the darker gain. Pixels under movers (`masked`) are left out."""
    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return False
    h, w = region.shape
    y1, y2 = max(0, int(ys.min()) - NEAR), min(h, int(ys.max()) + NEAR + 1)
    x1, x2 = max(0, int(xs.min()) - NEAR), min(w, int(xs.max()) + NEAR + 1)
    kernel = np.ones((2 * NEAR + 1, 2 * NEAR + 1), np.uint8)
    movers = cv2.dilate(masked[y1:y2, x1:x2].astype(np.uint8), kernel).astype(bool)  # a mover's box is loose
    near = cv2.dilate(region[y1:y2, x1:x2].astype(np.uint8), kernel).astype(bool) & ~movers
    if int(near.sum()) < MIN_PIXELS:
        return False
    cur = current[y1:y2, x1:x2][near].astype(np.float32) + RATIO_OFFSET  # (n, 3)
    ref = reference[y1:y2, x1:x2][near].astype(np.float32) + RATIO_OFFSET
    ratio = np.log(cur) - np.log(ref)  # (n, 3) log gain per channel
    grey = ratio.mean(axis=1)
    lo, hi, dark = _two_levels(grey)
    n = dark.size
    n_dark = int(dark.sum())
    if not (MAX_DARKENING <= lo - hi <= MIN_DARKENING) or min(n_dark, n - n_dark) < MIN_SIDE * n:
        return False
    # A shadow's gains are two sharp peaks; an object's ratio spreads (its look against the ground's).
    spread = float(np.median(np.where(dark, np.abs(grey - lo), np.abs(grey - hi))))
    if hi - lo < MIN_SEPARATION * max(spread, 1e-3):
        return False
    fits = np.zeros(n, bool)
    for side in (dark, ~dark):  # each side: one gain per channel (a shadow is often bluer than the sun)
        gains = np.median(ratio[side], axis=0)
        fits[side] = np.abs(ratio[side] - gains).max(axis=1) <= TOLERANCE
    if float(fits.mean()) < MIN_EXPLAINED:
        return False
    # The ground under the shadow keeps its texture: where it has one, it correlates with the reference's.
    ref_grey, cur_grey = ref[dark].mean(axis=1), cur[dark].mean(axis=1)
    if float(ref_grey.std()) < TEXTURED:
        return True
    return _ncc(cur_grey, ref_grey) >= MIN_TEXTURE_NCC
