"""Builders for rule tests: hand-made tracks and engines on a 1000x1000 frame (pixels = 1000 x normalised)."""

from __future__ import annotations

from typing import Any

from edge_agent.rules import RuleConfig, RuleEngine
from edge_agent.types import ProblemUpdate, Track, TrackState
from edge_agent.zones import ZoneConfig
from protocol.catalog import default_catalog

FRAME = (1000, 1000)
T0 = 1_780_000_000.0  # an epoch in 2026; schedule tests pick their own
SQUARE = [[0.5, 0.0], [1.0, 0.0], [1.0, 0.5], [0.5, 0.5]]  # top-right quarter


def track(tid: int, label: str, xyxy: tuple[float, float, float, float], *, now: float,
          state: TrackState = TrackState.TRACKED, first_seen: float | None = None,
          stationary_since: float | None = None, score: float = 0.9) -> Track:
    return Track(track_id=tid, class_id=0, label=label, xyxy=xyxy, score=score, state=state,
                 first_seen=now if first_seen is None else first_seen, last_seen=now,
                 stationary_since=stationary_since)


def engine(class_id: str, zones: list[dict[str, Any]] | None = None, *, timezone: str = "UTC",
           **rule: Any) -> RuleEngine:
    zone_cfgs = [ZoneConfig.model_validate(z) for z in (zones or [{"id": "z", "polygon": SQUARE}])]
    rule.setdefault("zones", [z.id for z in zone_cfgs])
    cfg = RuleConfig.model_validate({"class_id": class_id, **rule})
    return RuleEngine(default_catalog(), zone_cfgs, [cfg], "cam-1", FRAME, timezone=timezone)


def run(eng: RuleEngine, frames: list[tuple[float, list[Track]]]) -> list[tuple[float, ProblemUpdate]]:
    """Feed (time, tracks) steps; return every update with the time it was emitted."""
    out = []
    for now, tracks in frames:
        out.extend((now, u) for u in eng.update(tracks, now))
    return out


def states(updates: list[tuple[float, ProblemUpdate]]) -> list[str]:
    return [u.state for _, u in updates]


def uneven_times(start: float, end: float) -> list[float]:
    """Timestamps at an irregular 3-10 fps with a few stalls, as a real decoder delivers them."""
    steps = [0.1, 0.33, 0.25, 0.12, 0.9, 0.2, 0.31, 0.14, 1.7, 0.27]
    out, t, i = [], start, 0
    while t <= end:
        out.append(t)
        t += steps[i % len(steps)]
        i += 1
    return out
