"""Count over time: at least `min_count` objects of the rule's labels inside the zone for >= min_dwell_s.

Crowd gathering (persons), parked-bicycle clutter (with `stationary_s`, so riders passing by are not
counted). The zone is one place: one problem per zone at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.rules.base import Candidate, OpenProblem, Rule, RuleContext, Stationarity
from edge_agent.types import Track
from protocol.catalog import CountParams


class CountRule(Rule):
    params: CountParams
    zone_wide = True

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        self.stationarity = Stationarity(self.params.stationary_iou)
        self._enough_since: float | None = None

    def forget(self, present: set[int]) -> None:
        self.stationarity.forget(present)

    def _counted(self, tracks: Sequence[Track], now: float) -> list[Track]:
        inside = [t for t in tracks if self.in_zone(t)]
        need = self.params.stationary_s
        if need is None:
            return inside
        return [t for t in inside if (s := self.stationarity.since(t, now)) is not None and now - s >= need]

    def candidates(self, tracks: Sequence[Track], now: float) -> list[Candidate]:
        counted = self._counted(tracks, now)
        if len(counted) < self.params.min_count:
            self._enough_since = None
            return []
        if self._enough_since is None:
            self._enough_since = now
        return [self._candidate_of(("zone",), self._enough_since, counted)]

    def still_there(self, problem: OpenProblem, tracks: Sequence[Track], now: float) -> Candidate | None:
        counted = self._counted(tracks, now)
        if len(counted) < self.params.min_count:
            return None
        return self._candidate_of(problem.key, problem.first_seen, counted)
