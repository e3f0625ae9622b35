"""Co-occurrence: an anchor object (a person) inside the zone with a companion (umbrella, table, chair)
next to it, both stationary, together for >= min_dwell_s. A street stall, an umbrella stall, a vendor.

One candidate per anchor; two vendors at one stall overlap and give one problem.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.geometry import box_gap
from edge_agent.rules.base import (
    Candidate,
    EnterTimes,
    OpenProblem,
    Rule,
    RuleContext,
    Stationarity,
)
from edge_agent.types import Track
from protocol.catalog import CoOccurrenceParams


class CoOccurrenceRule(Rule):
    params: CoOccurrenceParams

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        self.stationarity = Stationarity(self.params.stationary_iou)
        self.in_zone_since = EnterTimes()
        self.together_since = EnterTimes()

    def wanted_labels(self) -> frozenset[str]:
        return frozenset(self.params.anchor_labels) | frozenset(self.params.companion_labels)

    def forget(self, present: set[int]) -> None:
        for state in (self.stationarity, self.in_zone_since, self.together_since):
            state.forget(present)

    def candidates(self, tracks: Sequence[Track], now: float) -> list[Candidate]:
        # Stationarity is updated for every track each frame so that its reference boxes stay current.
        still = {t.track_id: self.stationarity.since(t, now) for t in tracks}
        anchors = [t for t in tracks if t.label in self.params.anchor_labels]
        out = []
        for a in anchors:
            entered = self.in_zone_since.update(a.track_id, self.in_zone(a), now)
            mates = self._companions(a, tracks, still)
            together = self.together_since.update(a.track_id, bool(mates), now)
            if entered is None or together is None or not mates:
                continue
            since = together if self.params.require_stationary else max(entered, together)
            if self.params.require_stationary:
                stops = [still[t.track_id] for t in (a, *mates)]
                if any(s is None for s in stops):
                    continue
                since = max(since, *(s for s in stops if s is not None))
            out.append(self._candidate_of(("anchor", a.track_id), since, [a, *mates]))
        return out

    def _companions(self, anchor: Track, tracks: Sequence[Track], still: dict[int, float | None]) -> list[Track]:
        return [t for t in self._near(anchor, tracks, {anchor.track_id})
                if not self.params.require_stationary or still[t.track_id] is not None]

    def _near(self, anchor: Track, tracks: Sequence[Track], exclude: set[int] | tuple[int, ...]) -> list[Track]:
        """Companion-labelled tracks within `max_gap` anchor heights of the anchor, not in `exclude`."""
        reach = self.params.max_gap * (anchor.xyxy[3] - anchor.xyxy[1])
        return [t for t in tracks if t.track_id not in exclude and t.label in self.params.companion_labels
                and box_gap(t.xyxy, anchor.xyxy) <= reach]

    def still_there(self, problem: OpenProblem, tracks: Sequence[Track], now: float) -> Candidate | None:
        """The stall is there while its anchor (or an anchor at the same place) is; the companions still
        next to it stay part of it, so a second vendor at the same stall is no new problem."""
        anchors = [t for t in tracks if t.label in self.params.anchor_labels]
        seen = super().still_there(problem, anchors, now)
        if seen is None:
            return None
        anchor = next(t for t in anchors if t.track_id == seen.track_ids[0])
        mates = self._near(anchor, tracks, seen.track_ids)
        return self._candidate_of(problem.key, problem.first_seen, [anchor, *mates])
