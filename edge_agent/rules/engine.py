"""RuleEngine: every rule of one camera, tracks in, ProblemUpdates out. Pure: no I/O, no clocks of its own.

Build it once per camera; call `update(tracks, now)` after each tracker step with the frame's timestamp
(epoch seconds: schedules read local time from it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from edge_agent.rules.base import Rule, RuleContext
from edge_agent.rules.co_occurrence import CoOccurrenceRule
from edge_agent.rules.config import RuleConfig
from edge_agent.rules.count import CountRule
from edge_agent.rules.dwell import DwellRule
from edge_agent.rules.line_crossing import LineCrossingRule
from edge_agent.rules.presence import PresenceRule
from edge_agent.types import ProblemUpdate, Track
from edge_agent.zones import Zone, ZoneConfig
from protocol.catalog import Catalog, InactiveClass, ProblemClass, RuleType

RULE_TYPES: dict[RuleType, type[Rule]] = {
    RuleType.DWELL: DwellRule,
    RuleType.PRESENCE: PresenceRule,
    RuleType.CO_OCCURRENCE: CoOccurrenceRule,
    RuleType.COUNT: CountRule,
    RuleType.LINE_CROSSING: LineCrossingRule,
}


FieldPath = tuple[str | int, ...]


def rule_zone_issues(rules: Sequence[RuleConfig], zones: Sequence[ZoneConfig], catalog: Catalog, *,
                     camera_id: str | None = None) -> list[tuple[FieldPath, str]]:
    """Every cross-object problem between a camera's rules and zones, as (field path, message) pairs:
    zone ids and rule ids unique, each rule's zones defined and of the shape its rule type needs
    (line crossing: a line; everything else: a polygon). Messages name the camera, rule and zone;
    paths point into the camera config (`rules[1].zones[0]`) so the loader can name file and line.
    """
    where = f"camera {camera_id!r}: " if camera_id else ""
    out: list[tuple[FieldPath, str]] = []
    first: dict[str, int] = {}
    for i, zone in enumerate(zones):
        if zone.id in first:
            out.append((("zones", i, "id"), f"{where}zone id {zone.id!r} is used by zones[{first[zone.id]}] too; "
                        "zone ids must be unique"))
        first.setdefault(zone.id, i)
    by_id = {z.id: z for z in zones}
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.rule_id in seen:
            out.append((("rules", i), f"{where}two rules have id {rule.rule_id!r}; give one an `id`"))
        seen.add(rule.rule_id)
        wants_line = rule.problem_class(catalog).rule is RuleType.LINE_CROSSING and rule.source == "detector"
        for j, zone_id in enumerate(rule.zones):
            target = by_id.get(zone_id)
            if target is None:
                out.append((("rules", i, "zones", j), f"{where}rule {rule.rule_id!r} refers to unknown zone "
                            f"{zone_id!r} (zones: {', '.join(sorted(by_id)) or 'none defined'})"))
            elif target.is_line != wants_line:
                need, got = ("a line zone (`line`)", "a polygon") if wants_line else ("a polygon zone (`polygon`)",
                                                                                    "a line")
                out.append((("rules", i, "zones", j), f"{where}rule {rule.rule_id!r}: class {rule.class_id!r} "
                            f"needs {need} but zone {zone_id!r} is {got}"))
    return out


def check_rules_against_zones(rules: Sequence[RuleConfig], zones: Sequence[ZoneConfig],
                              catalog: Catalog) -> None:
    """`rule_zone_issues` for code that builds engines directly: raises ValueError with every problem."""
    issues = rule_zone_issues(rules, zones, catalog)
    if issues:
        raise ValueError("; ".join(msg for _, msg in issues))


class RuleEngine:
    """All rules of one camera.

    zones: ZoneConfig (normalised) or Zone objects; rules: RuleConfig; frame_wh: (width, height) pixels
    of the frames the tracks' boxes are in; timezone: IANA name for schedules without their own.
    """

    def __init__(self, catalog: Catalog, zones: Sequence[ZoneConfig | Zone], rules: Sequence[RuleConfig],
                 camera_id: str, frame_wh: tuple[int, int], *, timezone: str = "UTC") -> None:
        self.catalog = catalog
        self.camera_id = camera_id
        self.frame_wh = frame_wh
        zone_cfgs = [z.config if isinstance(z, Zone) else z for z in zones]
        check_rules_against_zones(rules, zone_cfgs, catalog)
        self.zones = {z.id: Zone.from_config(z, frame_wh) for z in zone_cfgs}
        self.rules: list[Rule] = []
        for cfg in rules:
            if not cfg.enabled or cfg.source != "detector":  # change and state rules run on their own
                continue
            problem_class = catalog.get(cfg.class_id)
            params = problem_class.typed_params(cfg.params)
            clock = cfg.clock(timezone)
            for zid in cfg.zones:
                ctx = RuleContext(cfg, problem_class, params, self.zones[zid], camera_id, clock)
                self.rules.append(RULE_TYPES[problem_class.rule](ctx))  # type: ignore[index]  # checked: a camera class

    def update(self, tracks: Sequence[Track], now: float) -> list[ProblemUpdate]:
        """Feed the tracker's current tracks (including LOST ones in their grace window) at time `now`."""
        out: list[ProblemUpdate] = []
        for rule in self.rules:
            out.extend(rule.update(tracks, now))
        return out

    def describe_classes(self, model_labels: Iterable[str]) -> tuple[list[ProblemClass], list[InactiveClass]]:
        """Catalog classes the loaded model can drive, and the rest with the labels they miss."""
        return self.catalog.active_for(model_labels)

    def inactive_rules(self, model_labels: Iterable[str]) -> list[tuple[str, tuple[str, ...]]]:
        """Configured rules that can never fire with these labels: (rule id, missing labels)."""
        have = set(model_labels)
        out = []
        for r in self.rules:
            groups = r.params.label_groups(r.ctx.problem_class.labels)
            missing = sorted(set().union(*(g for g in groups if not g & have)))
            if missing:
                out.append((r.ctx.config.rule_id, tuple(missing)))
        return list(dict.fromkeys(out))
