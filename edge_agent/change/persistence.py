"""Per pixel: since when has this place differed from the reference while looking the same?

A walker makes a pixel differ for a moment, then it matches again (or looks different again: a new
start). A bag set down makes it differ and keep the same new look: its `since` stays, and once
`now - since` exceeds a rule's dwell the pixel belongs to a region. Pixels under a masked track keep
their state with the clock paused, so a passer-by does not restart a bag's timer and a person
standing still does not age the ground under them.
"""

from __future__ import annotations

import numpy as np

from edge_agent.change.structure import difference

OFF_FRACTION = 0.6  # a changed pixel matches again below this share of the threshold (hysteresis)


class StaticChange:
    def __init__(self, shape_hw: tuple[int, int]) -> None:
        self.since = np.full(shape_hw, np.nan, np.float64)  # epoch seconds: float32 would round them to minutes
        self.look: np.ndarray | None = None  # the structure each changed pixel took on when it changed

    @property
    def active(self) -> np.ndarray:
        return ~np.isnan(self.since)

    def age(self, now: float) -> np.ndarray:
        """Seconds each pixel has been changed and unchanged since; NaN where it matches the reference."""
        return now - self.since

    def update(self, current: np.ndarray, diff_ref: np.ndarray, masked: np.ndarray, now: float, dt: float,
               threshold: float) -> None:
        """`current`: structure now; `diff_ref`: its difference from the reference; `masked`: pixels under
        tracks; `dt`: seconds since the last update."""
        if self.look is None:
            self.look = current.copy()
        active = self.active
        self.since[active & masked] += dt  # hidden: the clock does not run
        visible = ~masked
        stop = active & visible & (diff_ref <= threshold * OFF_FRACTION)
        other_look = active & visible & ~stop & (difference(current, self.look) > threshold)
        start = ~active & visible & (diff_ref > threshold)
        renew = start | other_look
        self.since[stop] = np.nan
        self.since[renew] = now
        # Pixels that are not holding a change follow the current look, so a changed pixel's comparison
        # (smoothed over its neighbours) is not disturbed by stale neighbours.
        follow = renew | ~self.active
        np.copyto(self.look, current, where=follow[None, :, :, None])

    def reset(self, where: np.ndarray) -> None:
        self.since[where] = np.nan
