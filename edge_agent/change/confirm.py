"""The optional second opinion on a change region before its event is sent.

A few-shot state head (or any model) that knows what the class looks like can reject regions that are
not it (a new planter, a delivered parcel): `ChangeParams.confirm: {model: HEAD.json, label: garbage}`
runs a state head file on the region's crop (edge_agent.zone_state.HeadConfirmer, built by the
pipeline); `{by: NAME}` asks a confirmer the program started the agent with. A region scored below
`min_score` is dropped and counted.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class RegionConfirmer(Protocol):
    def __call__(self, class_id: str, current: np.ndarray, reference: np.ndarray) -> float:
        """Score in 0-1 that `current` (BGR crop of the region now) shows `class_id`; `reference` is the
        same place when it was clear (same size)."""
        ...
