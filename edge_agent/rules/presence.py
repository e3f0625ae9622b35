"""Presence in zone: an object of the rule's labels inside the zone for >= min_dwell_s, moving or not.

Meant to be gated by the rule's schedule: a stall in a tidal-stall zone outside its hours (schedule mode
`allowed`), a person in a water zone, machinery on a site out of hours, a pothole seen for a few seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.rules.base import Candidate, EnterTimes, Rule, RuleContext
from edge_agent.types import Track
from protocol.catalog import PresenceParams


class PresenceRule(Rule):
    params: PresenceParams

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        self.in_zone_since = EnterTimes()

    def forget(self, present: set[int]) -> None:
        self.in_zone_since.forget(present)

    def candidates(self, tracks: Sequence[Track], now: float) -> list[Candidate]:
        out = []
        for t in tracks:
            entered = self.in_zone_since.update(t.track_id, self.in_zone(t), now)
            if entered is not None:
                out.append(self._candidate_of(("track", t.track_id), entered, [t]))
        return out
