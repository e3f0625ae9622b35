"""Dwell in zone: a stationary object of the rule's labels inside the zone for >= min_dwell_s.

Illegal parking, abandoned vehicles, discarded furniture, garbage piles. The timer runs from when the
object stopped (it cannot have entered the zone since without moving); with `unattended_labels` it also
restarts while a person is near, so goods a vendor stands next to are not "discarded".
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
from edge_agent.types import Track, TrackState
from protocol.catalog import DwellParams


class DwellRule(Rule):
    params: DwellParams

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        self.stationarity = Stationarity(self.params.stationary_iou)
        self.in_zone_since = EnterTimes()
        self.unattended_since = EnterTimes(grace_s=0.0)
        self._all_tracks: Sequence[Track] = ()

    def wanted_labels(self) -> frozenset[str]:
        return self.ctx.labels | frozenset(self.params.unattended_labels)

    def forget(self, present: set[int]) -> None:
        for state in (self.stationarity, self.in_zone_since, self.unattended_since):
            state.forget(present)

    def candidates(self, tracks: Sequence[Track], now: float) -> list[Candidate]:
        objects = [t for t in tracks if t.label in self.ctx.labels]
        watchers = [t for t in tracks if t.label in self.params.unattended_labels]
        out = []
        for t in objects:
            stopped = self.stationarity.since(t, now)
            entered = self.in_zone_since.update(t.track_id, self.in_zone(t), now)
            if stopped is None or entered is None:
                continue
            # Standing still in the zone now means it has been in the zone since it stopped, even when
            # that was before the engine started (a car already parked at start-up counts).
            since = stopped
            if self.params.unattended_labels:
                alone = self.unattended_since.update(t.track_id, not self._attended(t, watchers), now)
                if alone is None:
                    continue
                since = max(since, alone)
            out.append(self._candidate_of(("track", t.track_id), since, [t]))
        return out

    def still_there(self, problem: OpenProblem, tracks: Sequence[Track], now: float) -> Candidate | None:
        objects = [t for t in tracks if t.label in self.ctx.labels]
        return super().still_there(problem, objects, now)

    def _attended(self, obj: Track, watchers: Sequence[Track]) -> bool:
        size = max(obj.xyxy[2] - obj.xyxy[0], obj.xyxy[3] - obj.xyxy[1])
        return any(w.state is not TrackState.REMOVED and w.track_id != obj.track_id
                   and box_gap(w.xyxy, obj.xyxy) <= self.params.near_factor * size for w in watchers)
