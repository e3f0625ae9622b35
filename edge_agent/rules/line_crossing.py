"""Line crossing: a track's anchor crosses a line zone against its allowed direction (wrong way), or at
all (`forbid: any`, with a schedule: trucks in restricted hours).

A crossing is the anchor moving from one side of the line to the other (outside a small dead band, so
jitter on the line is none) along a step that passes through the line segment itself. Each crossing opens
a problem at once; it clears when the track has been gone `clear_after_s`. The cooldown starts at the
crossing, so a convoy gives one event per cooldown.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_agent.rules.base import Candidate, OpenProblem, Rule, RuleContext
from edge_agent.types import Track, TrackState
from protocol.catalog import LineCrossingParams


class LineCrossingRule(Rule):
    params: LineCrossingParams
    zone_wide = True

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        if not self.zone.is_line:
            raise ValueError(f"rule {ctx.config.rule_id!r}: zone {self.zone.id!r} is a polygon; "
                             "line_crossing needs a zone with `line`")
        self.allowed = self.zone.allowed_side()
        if self.params.forbid == "against_direction" and self.allowed is None:
            raise ValueError(f"rule {ctx.config.rule_id!r}: forbid is against_direction but zone "
                             f"{self.zone.id!r} has allowed_direction any; set the zone's allowed_direction")
        w, h = self.zone.frame_wh
        self.deadband_px = self.params.deadband * float(np.hypot(w, h))
        self._last: dict[int, tuple[int, np.ndarray]] = {}  # track -> (confirmed side, anchor there)

    def in_zone(self, track: Track) -> bool:
        return True  # a line has no inside; crossing is checked in `candidates`

    def forget(self, present: set[int]) -> None:
        for tid in list(self._last):
            if tid not in present:
                del self._last[tid]

    def candidates(self, tracks: Sequence[Track], now: float) -> list[Candidate]:
        out = []
        for t in tracks:
            if t.state is TrackState.LOST:
                continue  # predicted boxes are guesses; wait for a real detection
            point = self.zone.anchors(np.asarray([t.xyxy]))[0]
            side = int(self.zone.side(point, self.deadband_px)[0])
            if side == 0:
                continue
            last = self._last.get(t.track_id)
            self._last[t.track_id] = (side, point)
            if last is None or last[0] == side or not self.zone.segment_crosses(last[1], point):
                continue
            if self.params.forbid == "any" or side != self.allowed:
                out.append(self._candidate_of(("crossing", t.track_id, now), now, [t]))
        return out

    def still_there(self, problem: OpenProblem, tracks: Sequence[Track], now: float) -> Candidate | None:
        own = [t for t in tracks if t.track_id in problem.track_ids]
        return self._candidate_of(problem.key, problem.first_seen, own) if own else None

    def _after_open(self, problem: OpenProblem, now: float) -> None:
        self.start_cooldown(problem.xyxy, now)
