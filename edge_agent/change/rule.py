"""One `source: change` rule on one zone: regions that stayed changed -> opened / updated / cleared.

A region is a connected set of the zone's pixels that have differed from the reference, looking the
same, for at least `min_dwell_s` (thin lines and specks removed: shadow edges, noise). It opens an
event when it covers `min_area_frac` of the zone, added edges rather than removed them (see
`structure.appeared`), is not a cast shadow standing still (`shadow.is_cast_shadow`: the ground darkened
by a gain, its texture kept), and the confirmer, if any, agrees. The event clears once its place has matched
the reference for `clear_after_s`; a region hidden behind a mover keeps its event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.change.confirm import RegionConfirmer
from edge_agent.change.params import ChangeParams
from edge_agent.change.shadow import is_cast_shadow
from edge_agent.change.structure import appeared
from edge_agent.change.view import ChangeView
from edge_agent.geometry import Box
from edge_agent.rules.base import refresh_open
from edge_agent.rules.config import RuleClock, RuleConfig
from edge_agent.types import ProblemUpdate
from edge_agent.zones import ZoneConfig
from protocol.catalog import ProblemClass
from protocol.messages import ProblemState

LABEL = "change"  # what a change event carries in `labels`: no detector label drove it
MIN_REGION_PX = 12  # at the analysis size: below this a region is noise whatever the zone's size
PRESENT_FRACTION = 0.3  # of a region's visible pixels that must still differ for it to be there
CONFIRM_MIN_FRAC = 0.15  # the crop a confirmer sees spans at least this share of the frame's width and height
SAME_PLACE = 0.2  # overlap (of the smaller region) that makes two regions the same place
_KERNEL = np.ones((3, 3), np.uint8)
# Parts of one object (a bag beside the jacket spilling from it) closer than this are one region.
_JOIN = np.ones((7, 7), np.uint8)
_SHADE_MARGIN = np.ones((5, 5), np.uint8)  # a known shadow's edge wanders this much between analyses


@dataclass(eq=False)
class _Region:
    mask: np.ndarray
    box: Box


@dataclass(eq=False)
class _Open(_Region):
    problem_id: str
    first_seen: float
    last_present: float
    last_emit: float
    score: float


def context_box(box: Box, frame_wh: tuple[int, int]) -> Box:
    """`box` grown about its centre to at least CONFIRM_MIN_FRAC of the frame per side: a confirmer sees
    the object in its setting (and a region found first as a sliver of it, the whole object)."""
    fw, fh = frame_wh
    x1, y1, x2, y2 = box
    half_w, half_h = max(x2 - x1, CONFIRM_MIN_FRAC * fw) / 2, max(y2 - y1, CONFIRM_MIN_FRAC * fh) / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return (max(0.0, cx - half_w), max(0.0, cy - half_h), min(float(fw), cx + half_w), min(float(fh), cy + half_h))


def zone_mask(zone: ZoneConfig, shape_hw: tuple[int, int]) -> np.ndarray:
    """The zone's polygon rasterised at an analysis size."""
    h, w = shape_hw
    mask = np.zeros((h, w), np.uint8)
    points = np.round(np.array(zone.polygon or []) * [w, h]).astype(np.int32)
    cv2.fillPoly(mask, [points], 1)
    return mask.astype(bool)


def same_place(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two regions are one place: they overlap, or touch once grown by the join distance."""
    overlap = int(np.count_nonzero(a & b))
    if overlap and overlap >= SAME_PLACE * min(int(a.sum()), int(b.sum())):
        return True
    return bool(np.any(cv2.dilate(a.astype(np.uint8), _JOIN).astype(bool) & b))


class ChangeRule:
    def __init__(self, config: RuleConfig, problem_class: ProblemClass, params: ChangeParams, zone: ZoneConfig,
                 camera_id: str, clock: RuleClock, shape_hw: tuple[int, int],
                 confirmer: RegionConfirmer | None = None) -> None:
        self.config = config
        self.problem_class = problem_class
        self.params = params
        self.zone = zone
        self.camera_id = camera_id
        self.clock = clock
        self.confirmer = confirmer
        self.rejections = 0  # regions the confirmer turned down
        # Cast shadows standing still: not judged again while they stay (a walker crossing one's edge would
        # blur the verdict); a region joined to one is judged on its part away from it.
        self.shadows: list[_Region] = []
        self.mask = zone_mask(zone, shape_hw)
        self.min_area_px = max(MIN_REGION_PX, params.min_area_for(zone.id) * int(self.mask.sum()))
        self.open: list[_Open] = []
        self.rejected: list[_Region] = []  # the confirmer said no: not asked again while they stay
        self._cooldowns: list[tuple[np.ndarray, float]] = []

    def update(self, view: ChangeView) -> tuple[list[ProblemUpdate], list[np.ndarray]]:
        """Updates of this rule, and regions that are "ghosts" (something went away) for the reference."""
        now = view.now
        out = self._refresh_open(view)
        self.rejected = [r for r in self.rejected if self._present(r.mask, view)]
        self.shadows = [r for r in self.shadows if self._present(r.mask, view)]
        self._cooldowns = [(m, until) for m, until in self._cooldowns if until > now]
        ghosts: list[np.ndarray] = []
        if not self.clock.running(now):
            return out, ghosts
        for found in self.regions(view):
            region = self._beside_shadows(found, view)
            if region is None or self._known(region):
                continue
            if not appeared(view.current, view.reference, region.mask):
                ghosts.append(region.mask)
                continue
            if is_cast_shadow(view.image, view.reference_small, region.mask, view.masked):
                self.shadows.append(region)
                continue
            score = self._score(region, view)
            if score is None:
                self.rejected.append(region)
                continue
            age = view.age[region.mask]
            first_seen = now - float(np.nanmedian(age))
            p = _Open(region.mask, region.box, uuid.uuid4().hex, first_seen, now, now, score)
            self.open.append(p)
            out.append(self._emit(p, ProblemState.OPENED, view))
        return out, ghosts

    def forget(self, where: np.ndarray) -> None:
        """The reference was re-taken over `where`: open and rejected regions mostly inside it are gone
        (the hub already knows the place is clear; no `cleared` is sent)."""
        def inside(mask: np.ndarray) -> bool:
            return int(np.count_nonzero(mask & where)) >= 0.5 * int(mask.sum())

        self.open = [p for p in self.open if not inside(p.mask)]
        self.rejected = [r for r in self.rejected if not inside(r.mask)]
        self.shadows = [r for r in self.shadows if not inside(r.mask)]

    def regions(self, view: ChangeView) -> list[_Region]:
        """Connected regions of the zone that stayed changed for the dwell and are big enough."""
        with np.errstate(invalid="ignore"):
            aged = (view.age >= self.params.min_dwell_s) & self.mask & ~view.masked
        m = cv2.morphologyEx(aged.astype(np.uint8), cv2.MORPH_CLOSE, _KERNEL)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, _KERNEL)  # thin lines (shadow edges, wires) and specks go
        count, labels = cv2.connectedComponents(cv2.dilate(m, _JOIN), connectivity=8)
        out = []
        kept = m.astype(bool)
        for i in range(1, count):
            mask = (labels == i) & kept
            if np.count_nonzero(mask) >= self.min_area_px:
                out.append(_Region(mask, view.frame_box(mask)))
        return out

    def _known(self, region: _Region) -> bool:
        return (any(same_place(region.mask, p.mask) for p in self.open)
                or any(same_place(region.mask, r.mask) for r in self.rejected)
                or any(same_place(region.mask, m) for m, _ in self._cooldowns))

    def _beside_shadows(self, region: _Region, view: ChangeView) -> _Region | None:
        """The part of `region` away from the cast shadows already known (a region joined to a shadow may be
        something set down beside it); None when too little is left."""
        touching = [r.mask for r in self.shadows if same_place(region.mask, r.mask)]
        if not touching:
            return region
        shade = cv2.dilate(np.logical_or.reduce(touching).astype(np.uint8), _SHADE_MARGIN).astype(bool)
        rest = region.mask & ~shade
        if np.count_nonzero(rest) < self.min_area_px:
            return None
        return _Region(rest, view.frame_box(rest))

    def _score(self, region: _Region, view: ChangeView) -> float | None:
        """How clearly the region differs (0-1); None when the confirmer rejects it."""
        diff = float(view.diff[region.mask].mean())
        score = min(1.0, diff / 0.5)
        confirm = self.params.confirm
        if confirm is None or self.confirmer is None:
            return score
        current, reference = view.crops(context_box(region.box, view.frame.resolution_wh))
        verdict = float(self.confirmer(self.problem_class.id, current, reference))
        if verdict >= confirm.min_score:
            return verdict
        self.rejections += 1
        return None

    @staticmethod
    def _present(mask: np.ndarray, view: ChangeView) -> bool:
        """Still there: enough of its visible pixels differ; a region mostly hidden by movers counts as there."""
        visible = mask & ~view.masked
        n = int(visible.sum())
        if n < 0.2 * int(mask.sum()):
            return True
        return int(np.count_nonzero(view.differs & visible)) >= PRESENT_FRACTION * n

    def _still_there(self, p: _Open, view: ChangeView) -> bool:
        """An open problem's place still differs, and not only by a known cast shadow's edge running through
        it (litter picked up from a shadow's edge leaves the edge behind)."""
        if not self._present(p.mask, view):
            return False
        if not any(same_place(p.mask, s.mask) for s in self.shadows):
            return True
        return not is_cast_shadow(view.image, view.reference_small, p.mask, view.masked)

    def _refresh_open(self, view: ChangeView) -> list[ProblemUpdate]:
        def cool(p: _Open) -> None:
            if self.config.cooldown_s > 0:
                self._cooldowns.append((p.mask, view.now + self.config.cooldown_s))

        return refresh_open(self.open, lambda p: self._still_there(p, view), view.now,
                            update_every_s=self.params.update_every_s, clear_after_s=self.params.clear_after_s,
                            emit=lambda p, state: self._emit(p, state, view), on_clear=cool)

    def _emit(self, p: _Open, state: ProblemState, view: ChangeView) -> ProblemUpdate:
        end = p.last_present if state is ProblemState.CLEARED else view.now
        return ProblemUpdate(
            problem_id=p.problem_id, class_id=self.problem_class.id, state=state.value, camera_id=self.camera_id,
            zone=self.zone.id, xyxy=p.box, score=p.score, labels=(LABEL,), track_ids=(), first_seen=p.first_seen,
            observed_at=view.now, dwell_s=max(0.0, end - p.first_seen), reference_image=view.reference_image)
