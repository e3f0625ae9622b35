"""ChangeWatch: one camera's change rules, fed every sampled frame and the tracker's tracks.

It analyses at most every `analyse_every_s`: the frame scaled to `width`, movers masked, compared by
structure with the learned reference; then the fault check, the per-pixel persistence, each rule, and
the reference's slow adaptation where nothing changed. Cost per analysis at 256 px: a few milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from edge_agent.change.confirm import RegionConfirmer
from edge_agent.change.fault import ViewFault
from edge_agent.change.params import ChangeConfig
from edge_agent.change.persistence import OFF_FRACTION, StaticChange
from edge_agent.change.reference import Reference
from edge_agent.change.rule import ChangeRule, zone_mask
from edge_agent.change.shadow import NEAR
from edge_agent.change.structure import difference, structure
from edge_agent.change.view import ChangeView
from edge_agent.rules.config import RuleConfig
from edge_agent.types import Frame, ProblemUpdate, Track, TrackState
from edge_agent.zones import ZoneConfig
from protocol.catalog import Catalog
from protocol.messages import NormBox

log = logging.getLogger(__name__)

RETAKE_MARGIN = 0.25  # a retake's box grows by this fraction of its size per side (the case box is approximate)
_AROUND = np.ones((2 * NEAR + 9, 2 * NEAR + 9), np.uint8)  # the shadow test's neighbourhood and a margin
REFRESH_EVERY = 10  # analyses between recomputations of the (slowly adapting) reference's structure


def change_rules(rules: Sequence[RuleConfig]) -> list[RuleConfig]:
    return [r for r in rules if r.enabled and r.source == "change"]


class ChangeWatch:
    """All `source: change` rules of one camera. `update(frame, tracks)` returns their ProblemUpdates."""

    def __init__(self, config: ChangeConfig, rules: Sequence[RuleConfig], zones: Sequence[ZoneConfig],
                 camera_id: str, catalog: Catalog, *, timezone: str = "UTC",
                 confirmers: Mapping[str, RegionConfirmer] | None = None) -> None:
        self.config = config
        self.rule_configs = change_rules(rules)
        self.zones = {z.id: z for z in zones}
        self.camera_id = camera_id
        self.catalog = catalog
        self.timezone = timezone
        self.confirmers = dict(confirmers or {})
        for r in self.rule_configs:
            confirm = r.change_params(catalog).confirm
            if confirm is not None and confirm.name not in self.confirmers:
                field = "by names confirmer" if confirm.by is not None else "model names head"
                raise ValueError(f"camera {camera_id!r}: rule {r.rule_id!r}: params.confirm.{field} "
                                 f"{confirm.name!r}, but the agent has {sorted(self.confirmers) or 'none'}")
        self.ignore = frozenset(config.ignore_labels)
        self.fault = ViewFault(config, camera_id)
        self.rules: list[ChangeRule] = []
        self._rejected_before = 0  # rejections of rules replaced after a frame-size change
        self.reference = Reference(config)
        self.persistence: StaticChange | None = None
        self._frame_wh: tuple[int, int] | None = None
        self._shape_hw = (0, 0)
        self._ref_wh = (0, 0)
        self._last: float | None = None
        self._retake: list[tuple[str | None, NormBox | None, float | None]] = []
        self._counted = (0, 0)  # (retakes applied, regions rejected) already handed to pop_counts
        self.retakes_applied = 0
        self._ref_structure: np.ndarray | None = None
        self._ref_small: np.ndarray | None = None  # the reference at the analysis size (BGR float32)
        self.analyses = 0

    def retake(self, zone_id: str | None = None, box: NormBox | None = None, as_of: float | None = None) -> None:
        """Adopt the view at the next analysis as the clear reference of a zone (None: the whole frame),
        only inside `box` (grown by RETAKE_MARGIN) when given, e.g. when the hub verified a case of that
        zone clear. Pixels holding a change that began after `as_of` (epoch s) keep it: something set
        down after the verification is not swallowed by a late retake."""
        if zone_id is not None and zone_id not in self.watched_zones:
            raise LookupError(f"camera {self.camera_id}: zone {zone_id!r} has no change rule "
                              f"(watched: {sorted(self.watched_zones) or 'none'})")
        self._retake.append((zone_id, box, as_of))

    @property
    def rejected(self) -> int:
        """Regions the confirmers turned down so far."""
        return sum(r.rejections for r in self.rules) + self._rejected_before

    def pop_counts(self) -> tuple[int, int]:
        """(retakes applied, regions rejected) since the last call (the pipeline adds them to its metrics)."""
        now = (self.retakes_applied, self.rejected)
        delta = (now[0] - self._counted[0], now[1] - self._counted[1])
        self._counted = now
        return delta

    @property
    def watched_zones(self) -> set[str]:
        return {z for r in self.rule_configs for z in r.zones}

    # One frame -----------------------------------------------------------------------------------

    def update(self, frame: Frame, tracks: Sequence[Track]) -> list[ProblemUpdate]:
        now = frame.ts
        if self._last is not None and now - self._last < self.config.analyse_every_s * 0.95:
            return []
        dt = 0.0 if self._last is None else now - self._last
        self._last = now
        if frame.resolution_wh != self._frame_wh:
            self._setup(frame.resolution_wh)
        self.analyses += 1
        h, w = self._shape_hw
        at_ref = cv2.resize(frame.image, self._ref_wh, interpolation=cv2.INTER_AREA)
        small = cv2.resize(at_ref, (w, h), interpolation=cv2.INTER_AREA)
        masked = self._mask(tracks, frame.resolution_wh)
        masked_ref = self._to_ref(masked)
        if not self.reference.learn(at_ref, masked_ref, now):
            return []
        assert self.persistence is not None
        self._apply_retakes(at_ref, masked)
        current, reference = structure(small), self._reference_structure()
        diff = difference(current, reference)
        differs = diff > self.config.threshold * OFF_FRACTION
        out = self.fault.update(diff > self.config.threshold, masked, frame, self.reference.as_uint8)
        if self.fault.suspended:
            self.persistence.reset(np.ones_like(masked))
            return out
        self.persistence.update(current, diff, masked, now, dt, self.config.threshold)
        assert self._ref_small is not None
        view = ChangeView(now, frame, self.persistence.age(now), differs, masked, current, reference, diff,
                          small, self._ref_small, self.reference.as_uint8)
        for rule in self.rules:
            updates, ghosts = rule.update(view)
            out.extend(updates)
            for ghost in ghosts:  # something that stood there at learning went away: that is the clear view
                self.reference.retake(at_ref, self._to_ref(ghost))
                self.persistence.reset(ghost)
                self._ref_structure = None
        # The ground around a held change keeps its reference too: the shadow test compares it both sides
        # of a new edge, and a shadow's inside adopted over a long dwell would look like no shadow.
        around = cv2.dilate(self.persistence.active.astype(np.uint8), _AROUND).astype(bool)
        self.reference.adapt(at_ref, self._to_ref(~around & ~masked & ~differs), dt)
        return out

    # Helpers -------------------------------------------------------------------------------------

    def _setup(self, frame_wh: tuple[int, int]) -> None:
        fw, fh = frame_wh
        w = min(self.config.width, fw)
        self._shape_hw = (max(1, round(fh * w / fw)), w)
        rw = min(self.config.reference_width, fw)
        self._ref_wh = (rw, max(1, round(fh * rw / fw)))
        if self._frame_wh is not None:
            log.warning("camera %s: frame size changed %s -> %s; relearning the change reference",
                        self.camera_id, self._frame_wh, frame_wh)
        self._frame_wh = frame_wh
        self.reference = Reference(self.config)
        self.persistence = StaticChange(self._shape_hw)
        self._ref_structure = None
        self._rejected_before = self.rejected if self.rules else 0
        self.rules = []
        for r in self.rule_configs:
            problem_class = self.catalog.get(r.class_id)
            params = r.change_params(self.catalog)
            confirmer = self.confirmers[params.confirm.name] if params.confirm else None
            for zid in r.zones:
                self.rules.append(ChangeRule(r, problem_class, params, self.zones[zid], self.camera_id,
                                             r.clock(self.timezone), self._shape_hw, confirmer))

    def _reference_structure(self) -> np.ndarray:
        """The reference's structure, recomputed every REFRESH_EVERY analyses (it adapts slowly) or after a
        retake."""
        if self._ref_structure is None or self.analyses % REFRESH_EVERY == 0:
            h, w = self._shape_hw
            assert self.reference.image is not None
            self._ref_small = cv2.resize(self.reference.image, (w, h), interpolation=cv2.INTER_AREA)
            self._ref_structure = structure(self._ref_small)
        return self._ref_structure

    def _mask(self, tracks: Sequence[Track], frame_wh: tuple[int, int]) -> np.ndarray:
        """Analysis pixels under (margin-grown) boxes of present tracks of movers."""
        h, w = self._shape_hw
        sx, sy = w / frame_wh[0], h / frame_wh[1]
        mask = np.zeros((h, w), bool)
        m = self.config.mask_margin
        for t in tracks:
            if t.state is TrackState.REMOVED or t.label not in self.ignore:
                continue
            x1, y1, x2, y2 = t.xyxy
            mx, my = (x2 - x1) * m, (y2 - y1) * m
            left, top = max(0, int((x1 - mx) * sx)), max(0, int((y1 - my) * sy))
            right, bottom = min(w, int(np.ceil((x2 + mx) * sx))), min(h, int(np.ceil((y2 + my) * sy)))
            mask[top:bottom, left:right] = True
        return mask

    def _to_ref(self, mask: np.ndarray) -> np.ndarray:
        return cv2.resize(mask.astype(np.uint8), self._ref_wh, interpolation=cv2.INTER_NEAREST).astype(bool)

    def _apply_retakes(self, at_ref: np.ndarray, masked: np.ndarray) -> None:
        assert self.persistence is not None
        for zone_id, box, as_of in self._retake:
            where = self._retake_area(zone_id, box, as_of) & ~masked
            self.reference.retake(at_ref, self._to_ref(where))
            self.persistence.reset(where)
            self._ref_structure = None
            for rule in self.rules:
                if zone_id is None or rule.zone.id == zone_id:
                    rule.forget(where)
            self.retakes_applied += 1
        self._retake.clear()

    def _retake_area(self, zone_id: str | None, box: NormBox | None, as_of: float | None) -> np.ndarray:
        """Analysis pixels a retake adopts: the zone, inside the grown box, not changed since after `as_of`."""
        assert self.persistence is not None
        h, w = self._shape_hw
        zone = self.zones.get(zone_id) if zone_id is not None else None
        where = zone_mask(zone, self._shape_hw) if zone is not None else np.ones((h, w), bool)
        if box is not None:
            mx, my = (box.x2 - box.x1) * RETAKE_MARGIN, (box.y2 - box.y1) * RETAKE_MARGIN
            inside = np.zeros((h, w), bool)
            inside[max(0, int((box.y1 - my) * h)):int(np.ceil((box.y2 + my) * h)),
                   max(0, int((box.x1 - mx) * w)):int(np.ceil((box.x2 + mx) * w))] = True
            where &= inside
        if as_of is not None:
            where &= ~(self.persistence.since > as_of)  # NaN (unchanged) compares False: adopted
        return where
