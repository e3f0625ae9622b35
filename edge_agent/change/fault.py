"""A camera knocked off its view (or covered, or blinded) differs from its reference almost everywhere.

That is one problem, the camera's: `ViewFault` reports it once as a `camera_view_shifted` event, and the
change rules pause while the view differs so the shift does not become a hundred "something appeared"
events. The fault clears when the view matches the reference again for `fault_after_s`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import numpy as np

from edge_agent.change.params import ChangeConfig
from edge_agent.types import Frame, ProblemUpdate
from protocol.messages import ProblemState

FAULT_CLASS = "camera_view_shifted"


class ViewFault:
    def __init__(self, config: ChangeConfig, camera_id: str) -> None:
        self.config = config
        self.camera_id = camera_id
        self.fraction = 0.0  # share of the visible frame differing at the last analysis
        self._bad_since: float | None = None
        self._good_since: float | None = None
        self._open: tuple[str, float] | None = None  # (problem id, first seen)

    @property
    def suspended(self) -> bool:
        """Change rules pause: the view differs too widely now, or a fault is open."""
        return self._bad_since is not None or self._open is not None

    def update(self, differs: np.ndarray, masked: np.ndarray, frame: Frame,
               clear_view: Callable[[], np.ndarray]) -> list[ProblemUpdate]:
        """`differs`: pixels differing from the reference now; `clear_view()`: the reference image (for
        the evidence, made only when an update is sent)."""
        visible = ~masked
        n = int(visible.sum())
        self.fraction = float(np.count_nonzero(differs & visible)) / n if n else 0.0
        now = frame.ts
        bad = self.fraction >= self.config.fault_frac
        if bad:
            self._good_since = None
            self._bad_since = self._bad_since if self._bad_since is not None else now
            if self._open is None and now - self._bad_since >= self.config.fault_after_s:
                self._open = (uuid.uuid4().hex, self._bad_since)
                return [self._emit(ProblemState.OPENED, frame, clear_view())]
            return []
        self._bad_since = None
        if self._open is None:
            return []
        if self.fraction >= self.config.fault_frac / 2:
            self._good_since = None
            return []
        self._good_since = self._good_since if self._good_since is not None else now
        if now - self._good_since < self.config.fault_after_s:
            return []
        update = self._emit(ProblemState.CLEARED, frame, clear_view())
        self._open = None
        return [update]

    def _emit(self, state: ProblemState, frame: Frame, reference_image: np.ndarray) -> ProblemUpdate:
        assert self._open is not None
        problem_id, first_seen = self._open
        w, h = frame.resolution_wh
        return ProblemUpdate(
            problem_id=problem_id, class_id=FAULT_CLASS, state=state.value, camera_id=self.camera_id, zone=None,
            xyxy=(0.0, 0.0, float(w), float(h)), score=min(1.0, self.fraction), labels=("change",), track_ids=(),
            first_seen=first_seen, observed_at=frame.ts, dwell_s=max(0.0, frame.ts - first_seen),
            reference_image=reference_image)
