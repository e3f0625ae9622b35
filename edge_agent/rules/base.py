"""Shared machinery of the rule types: the problem lifecycle, cooldowns, stationarity.

A rule type only says where its condition holds right now (`candidates`) and since when; `Rule.update`
owns everything else: the dwell threshold, `opened` once per problem, `updated` on a timer, `cleared` when
the place has been empty for `clear_after_s`, and the cooldown. Tracks in the tracker's LOST state (inside
its re-acquisition grace) count as present, so a brief miss neither resets a timer nor clears a problem.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from edge_agent.geometry import Box, iou, union_box
from edge_agent.rules.config import RuleClock, RuleConfig, RuleSchedule
from edge_agent.types import ProblemUpdate, Track, TrackState
from edge_agent.zones import Zone
from protocol.catalog import ProblemClass, RuleParams
from protocol.messages import ProblemState

__all__ = [
    "Candidate", "OpenProblem", "Rule", "RuleClock", "RuleConfig", "RuleSchedule", "Stationarity", "refresh_open",
]

SAME_PLACE_IOU = 0.5  # a box this similar to a problem's box is the same place (re-detected, new track id)
ZONE_EXIT_GRACE_S = 2.0  # anchor jitter across a zone edge shorter than this does not restart a timer


class Lived(Protocol):
    """An open problem as the lifecycle sees it: when its place was last occupied, when it last emitted."""

    last_present: float
    last_emit: float


P = TypeVar("P", bound=Lived)


def refresh_open(open_problems: list[P], present: Callable[[P], bool], now: float, *,
                 update_every_s: float | None, clear_after_s: float,
                 emit: Callable[[P, ProblemState], ProblemUpdate],
                 on_clear: Callable[[P], None]) -> list[ProblemUpdate]:
    """The open problems' lifecycle, shared by every rule source (detector, change, zone state).

    `present(p)` says whether p's place is still occupied now (and may refresh p's box and tracks); a
    present problem emits `updated` every `update_every_s` (None: never); one absent for
    `clear_after_s` emits `cleared`, leaves `open_problems` and goes to `on_clear` (its cooldown)."""
    out: list[ProblemUpdate] = []
    for p in list(open_problems):
        if present(p):
            p.last_present = now
            if update_every_s is not None and now - p.last_emit >= update_every_s:
                p.last_emit = now
                out.append(emit(p, ProblemState.UPDATED))
        elif now - p.last_present >= clear_after_s:
            open_problems.remove(p)
            out.append(emit(p, ProblemState.CLEARED))
            on_clear(p)
    return out


def is_present(track: Track) -> bool:
    """Matched now or inside the tracker's grace window."""
    return track.state is not TrackState.REMOVED


class Stationarity:
    """Since when each track has stood still: the tracker's `stationary_since` when it gives one, else our
    own check (box IoU with the box where the object stopped >= `min_iou`)."""

    def __init__(self, min_iou: float) -> None:
        self.min_iou = min_iou
        self._ref: dict[int, tuple[Box, float]] = {}

    def since(self, track: Track, now: float) -> float | None:
        own = self._own(track, now)
        return track.stationary_since if track.stationary_since is not None else own

    def _own(self, track: Track, now: float) -> float | None:
        ref = self._ref.get(track.track_id)
        if track.state is TrackState.LOST:  # a predicted box says nothing new about motion
            return ref[1] if ref else None
        if ref is None or iou(ref[0], track.xyxy) < self.min_iou:
            self._ref[track.track_id] = (track.xyxy, now)
            return None if ref is not None else now
        return ref[1]

    def forget(self, keep: set[int]) -> None:
        for tid in list(self._ref):
            if tid not in keep:
                del self._ref[tid]


class EnterTimes:
    """Since when each track has continuously met a condition (in zone, attended, ...), with an exit grace."""

    def __init__(self, grace_s: float = ZONE_EXIT_GRACE_S) -> None:
        self.grace_s = grace_s
        self._since: dict[int, float] = {}
        self._last_true: dict[int, float] = {}

    def update(self, track_id: int, holds: bool, now: float) -> float | None:
        if holds:
            self._since.setdefault(track_id, now)
            self._last_true[track_id] = now
            return self._since[track_id]
        if track_id in self._last_true and now - self._last_true[track_id] <= self.grace_s:
            return self._since[track_id]
        self._since.pop(track_id, None)
        self._last_true.pop(track_id, None)
        return None

    def forget(self, keep: set[int]) -> None:
        for tid in list(self._since):
            if tid not in keep:
                self._since.pop(tid, None)
                self._last_true.pop(tid, None)


@dataclass(frozen=True)
class Candidate:
    """A place where a rule's condition holds now, and since when (camera clock, seconds)."""

    key: tuple[object, ...]
    since: float
    xyxy: Box
    track_ids: tuple[int, ...]
    labels: tuple[str, ...]
    score: float
    object_count: int = 1


@dataclass
class OpenProblem:
    problem_id: str
    key: tuple[object, ...]
    first_seen: float
    opened_at: float
    xyxy: Box
    track_ids: tuple[int, ...]
    labels: tuple[str, ...]
    score: float
    object_count: int
    last_present: float
    last_emit: float


@dataclass
class _Cooldown:
    xyxy: Box
    until: float


@dataclass
class RuleContext:
    """What a rule instance is bound to: its config, class, typed params, zone, camera and clock."""

    config: RuleConfig
    problem_class: ProblemClass
    params: RuleParams
    zone: Zone
    camera_id: str
    clock: RuleClock
    labels: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.labels = frozenset(self.params.labels or self.problem_class.labels)


class Rule(ABC):
    """One rule config on one zone. Subclasses implement `candidates`; `update` runs the lifecycle."""

    zone_wide = False  # the whole zone is one place (count, line): cooldowns cover the zone

    def __init__(self, ctx: RuleContext) -> None:
        self.ctx = ctx
        self.zone = ctx.zone
        self.params = ctx.params
        self.open: list[OpenProblem] = []
        self._cooldowns: list[_Cooldown] = []
        # When the schedule last switched the rule on; -inf: on since start-up, None: off. Timers only
        # count time while the rule runs, so a stall does not fire the second its allowed hours end.
        self._running_since: float | None = float("-inf")

    @property
    def min_dwell_s(self) -> float:
        return float(getattr(self.params, "min_dwell_s", 0.0))

    # --- for subclasses ---

    @abstractmethod
    def candidates(self, tracks: Sequence[Track], now: float) -> list[Candidate]:
        """Places where the condition holds now. `tracks` are already filtered by label, score, size."""

    def still_there(self, problem: OpenProblem, tracks: Sequence[Track], now: float) -> Candidate | None:
        """Is an open problem's place still occupied? Default: its own tracks, else an object of the
        rule's labels at the same place (a re-detection under a new track id), inside the zone."""
        inside = [t for t in tracks if self.in_zone(t)]
        own = [t for t in inside if t.track_id in problem.track_ids]
        if not own:
            best = max(inside, key=lambda t: iou(t.xyxy, problem.xyxy), default=None)
            if best is None or iou(best.xyxy, problem.xyxy) < SAME_PLACE_IOU:
                return None
            own = [best]
        return self._candidate_of(problem.key, problem.first_seen, own)

    def forget(self, present: set[int]) -> None:
        """Drop per-track state of tracks the tracker no longer has (REMOVED or absent)."""
        return None

    def in_zone(self, track: Track) -> bool:
        return self.zone.contains_box(track.xyxy)

    def eligible(self, track: Track) -> bool:
        """Label, score and size filters shared by all rule types."""
        if not is_present(track) or track.score < self.ctx.config.min_score:
            return False
        w, h = self.zone.frame_wh
        area = (track.xyxy[2] - track.xyxy[0]) * (track.xyxy[3] - track.xyxy[1])
        return area >= self.params.min_box_frac * w * h

    def wanted_labels(self) -> frozenset[str]:
        return self.ctx.labels

    @staticmethod
    def _candidate_of(key: tuple[object, ...], since: float, tracks: Sequence[Track]) -> Candidate:
        return Candidate(
            key=key, since=since, xyxy=union_box(t.xyxy for t in tracks),
            track_ids=tuple(t.track_id for t in tracks),
            labels=tuple(sorted({t.label for t in tracks})),
            score=max(t.score for t in tracks), object_count=len(tracks))

    # --- lifecycle ---

    def update(self, tracks: Sequence[Track], now: float) -> list[ProblemUpdate]:
        wanted = self.wanted_labels()
        usable = [t for t in tracks if t.label in wanted and self.eligible(t)]
        out = self._refresh_open(usable, now)
        running = self.ctx.clock.running(now)
        if not running:
            self._running_since = None
        elif self._running_since is None:
            self._running_since = now
        self.forget({t.track_id for t in tracks if is_present(t)})
        cands = self.candidates(usable, now)  # always called, so per-track state stays current
        if running:
            out.extend(self._open_new(cands, now))
        self._cooldowns = [c for c in self._cooldowns if c.until > now]
        return out

    def _refresh_open(self, tracks: Sequence[Track], now: float) -> list[ProblemUpdate]:
        def present(p: OpenProblem) -> bool:
            seen = self.still_there(p, tracks, now)
            if seen is not None:
                p.xyxy, p.track_ids, p.labels = seen.xyxy, seen.track_ids, seen.labels
                p.object_count = seen.object_count
                p.score = max(p.score, seen.score)
            return seen is not None

        return refresh_open(self.open, present, now, update_every_s=self.params.update_every_s,
                            clear_after_s=self.params.clear_after_s, emit=lambda p, state: self._emit(p, state, now),
                            on_clear=lambda p: self.start_cooldown(p.xyxy, now))

    def _open_new(self, cands: Sequence[Candidate], now: float) -> list[ProblemUpdate]:
        out: list[ProblemUpdate] = []
        for c in cands:
            since = max(c.since, self._running_since if self._running_since is not None else c.since)
            # c.since may predate start-up (a start scan); that is fine: the object really stood there.
            if now - since < self.min_dwell_s or self._already_open(c) or self._cooling(c):
                continue
            p = OpenProblem(
                problem_id=uuid.uuid4().hex, key=c.key, first_seen=since, opened_at=now, xyxy=c.xyxy,
                track_ids=c.track_ids, labels=c.labels, score=c.score, object_count=c.object_count,
                last_present=now, last_emit=now)
            self.open.append(p)
            out.append(self._emit(p, ProblemState.OPENED, now))
            self._after_open(p, now)
        return out

    def _after_open(self, problem: OpenProblem, now: float) -> None:
        """Hook: line rules start their cooldown at the event, not at the clear."""
        return None

    def start_cooldown(self, xyxy: Box, now: float) -> None:
        if self.ctx.config.cooldown_s > 0:
            self._cooldowns.append(_Cooldown(xyxy, now + self.ctx.config.cooldown_s))

    def _already_open(self, c: Candidate) -> bool:
        return any(p.key == c.key or set(p.track_ids) & set(c.track_ids)
                   or (not self.zone_wide and iou(p.xyxy, c.xyxy) >= SAME_PLACE_IOU) for p in self.open)

    def _cooling(self, c: Candidate) -> bool:
        return any(self.zone_wide or iou(cd.xyxy, c.xyxy) >= SAME_PLACE_IOU for cd in self._cooldowns)

    def _emit(self, p: OpenProblem, state: ProblemState, now: float) -> ProblemUpdate:
        end = p.last_present if state is ProblemState.CLEARED else now
        return ProblemUpdate(
            problem_id=p.problem_id, class_id=self.ctx.problem_class.id, state=state.value,
            camera_id=self.ctx.camera_id, zone=self.zone.id, xyxy=p.xyxy, score=float(p.score),
            labels=p.labels, track_ids=p.track_ids, first_seen=p.first_seen, observed_at=now,
            dwell_s=max(0.0, end - p.first_seen), object_count=p.object_count)
