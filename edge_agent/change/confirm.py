"""The optional second opinion on a change region before its event is sent.

A few-shot classifier (or any model) that knows what the class looks like can reject regions that are
not it (a new bench, a delivered parcel): `ChangeParams.confirm: {by: NAME, min_score: 0.5}` asks the
confirmer the agent was started with under NAME.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class RegionConfirmer(Protocol):
    def __call__(self, class_id: str, current: np.ndarray, reference: np.ndarray) -> float:
        """Score in 0-1 that `current` (BGR crop of the region now) shows `class_id`; `reference` is the
        same place when it was clear (same size)."""
        ...
