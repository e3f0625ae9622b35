"""The problem catalog: every class CityEye knows, the detector labels it needs, its rule and its SLA.

The data lives in `catalog.yaml` next to this module. The edge agent reads it to build rules and to report
which classes its model can drive; the hub reads it for names, deadlines and Open311 services. Rule
parameter models live here too (not in the edge agent) so that the hub can validate a catalog without
importing edge code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from protocol.messages import WireModel
from protocol.plates import PLATE_LABELS

SLUG = r"^[a-z0-9_]{2,64}$"


class ZoneKind(StrEnum):
    """What a zone is on the ground (the taxonomy's NP, SW, SF, RD, GR, WA, BIN, SITE and a few more)."""

    NO_PARKING = "no_parking"
    SIDEWALK = "sidewalk"
    SHOP_FRONT = "shop_front"
    ROADWAY = "roadway"
    GREEN = "green"
    WATER = "water"
    BIN_AREA = "bin_area"
    SITE = "site"
    TACTILE_PAVING = "tactile_paving"
    TIDAL_STALL = "tidal_stall"  # stalls allowed in set hours only
    PLAZA = "plaza"
    TREE = "tree"
    FACADE = "facade"  # walls, windows, shop signs
    GENERIC = "generic"
    LINE = "line"  # a counting/crossing line, not an area


class RuleType(StrEnum):
    DWELL = "dwell"  # a stationary object inside a zone for >= T
    PRESENCE = "presence"  # an object inside a zone for >= T, moving or not (schedules gate it)
    CO_OCCURRENCE = "co_occurrence"  # an anchor object with companions, together for >= T
    COUNT = "count"  # >= N objects inside a zone for >= T
    LINE_CROSSING = "line_crossing"  # a track crosses a line against its direction, or at all


class Family(StrEnum):
    """GB/T 30428.2 major classes (01-05); vendor classes are placed where a bureau would file them."""

    CITY_APPEARANCE = "city_appearance"  # 01 市容环境
    ADVERTISING = "advertising"  # 02 宣传广告
    CONSTRUCTION = "construction"  # 03 施工管理
    EMERGENCY = "emergency"  # 04 突发事件
    STREET_ORDER = "street_order"  # 05 街面秩序
    COMPONENT = "component"  # 部件: city furniture such as manhole covers, filed as a component
    SENSOR = "sensor"  # IoT sensor alerts (gas, noise meters): no GB/T camera class, no detector
    DEVICE = "device"  # the edge agent's checks of its own cameras (view shifted): maintenance, not the street


class Intake(StrEnum):
    """Who reports a class: edge cameras through a detector and a rule, IoT sensors via the hub API, or
    the edge agent about its own cameras (device)."""

    CAMERA = "camera"
    SENSOR = "sensor"
    DEVICE = "device"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


# --- rule parameters, one model per rule type -------------------------------------------------------


class RuleParams(WireModel):
    """Parameters every rule type shares."""

    labels: list[str] | None = Field(
        default=None, min_length=1,
        description="detector labels that drive the rule; default: the class's labels")
    clear_after_s: float = Field(
        default=30.0, gt=0,
        description="an open problem clears after its objects are gone from the place this long; longer "
        "rides out occlusions, shorter verifies cases sooner")
    update_every_s: float | None = Field(
        default=None, gt=0, description="emit `updated` with fresh evidence this often while open; None: never")
    min_box_frac: float = Field(
        default=0.0, ge=0, lt=1, description="ignore objects whose box is smaller than this fraction of the "
        "frame (area >= A in the taxonomy)")

    def label_groups(self, class_labels: Iterable[str]) -> list[frozenset[str]]:
        """Label sets a model must cover: each group needs at least one of its labels."""
        return [frozenset(self.labels or class_labels)]

    def used_labels(self) -> set[str]:
        return set(self.labels or ())


class DwellParams(RuleParams):
    min_dwell_s: float = Field(default=300.0, gt=0, description="stationary inside the zone this long")
    stationary_iou: float = Field(
        default=0.7, gt=0, lt=1,
        description="own stationarity check when the tracker gives none: box IoU with the box where it "
        "stopped; higher is stricter (detector jitter on small boxes needs ~0.6)")
    unattended_labels: list[str] = Field(
        default_factory=list,
        description="only count the object while none of these (e.g. person) is near it: discarded goods")
    near_factor: float = Field(
        default=1.0, gt=0, description="'near' = within this many object box sizes of the object")


class PresenceParams(RuleParams):
    min_dwell_s: float = Field(default=60.0, ge=0, description="inside the zone this long, moving or not")


class CoOccurrenceParams(RuleParams):
    anchor_labels: list[str] = Field(min_length=1, description="the object the problem is about (person)")
    companion_labels: list[str] = Field(min_length=1, description="at least one must be next to the anchor")
    min_dwell_s: float = Field(default=300.0, gt=0, description="together (and stationary) this long")
    max_gap: float = Field(
        default=0.5, ge=0,
        description="a companion counts when the gap between the boxes is <= this times the anchor's height")
    require_stationary: bool = True
    stationary_iou: float = Field(default=0.6, gt=0, lt=1)

    def label_groups(self, class_labels: Iterable[str]) -> list[frozenset[str]]:
        return [frozenset(self.anchor_labels), frozenset(self.companion_labels)]

    def used_labels(self) -> set[str]:
        return {*self.anchor_labels, *self.companion_labels}


class CountParams(RuleParams):
    min_count: int = Field(default=20, ge=1, description="at least this many objects inside the zone")
    min_dwell_s: float = Field(default=120.0, ge=0, description="for this long (count >= min_count throughout)")
    stationary_s: float | None = Field(
        default=None, gt=0, description="only count objects stationary this long (parked bikes); None: all")
    stationary_iou: float = Field(default=0.7, gt=0, lt=1)


class LineCrossingParams(RuleParams):
    forbid: Literal["against_direction", "any"] = Field(
        default="against_direction",
        description="against_direction: crossing opposite the line zone's allowed_direction (wrong way); "
        "any: every crossing (combine with a schedule for restricted hours)")
    deadband: float = Field(
        default=0.01, ge=0, lt=0.5,
        description="the anchor must be this far (fraction of the frame diagonal) from the line to count "
        "as on a side, so jitter on the line is no crossing")
    clear_after_s: float = Field(default=5.0, gt=0)


PARAMS_BY_RULE: dict[RuleType, type[RuleParams]] = {
    RuleType.DWELL: DwellParams,
    RuleType.PRESENCE: PresenceParams,
    RuleType.CO_OCCURRENCE: CoOccurrenceParams,
    RuleType.COUNT: CountParams,
    RuleType.LINE_CROSSING: LineCrossingParams,
}


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """'params.min_dwell_s: Input should be greater than 0 (got -1)' lines, one per error."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        got = f" (got {err['input']!r})" if err["type"] != "missing" else ""
        lines.append(f"{path or '<root>'}: {err['msg']}{got}")
    return "; ".join(lines)


# --- catalog entries -------------------------------------------------------------------------------


class Open311Service(WireModel):
    """Open311 GeoReport v2 `services.json` fields for one class (the hub's response model)."""

    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: str
    keywords: str
    group: str


class ProblemClass(WireModel):
    id: str = Field(pattern=SLUG, description="catalog id, the wire `class_id`")
    code: str | None = Field(
        default=None, pattern=r"^\*?\d{4,5}(\([A-Z]\))?$",
        description="GB/T 30428.2 small-class code (4 digits) or *GB/T 47678.5 (5 digits); None: vendor class")
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    family: Family
    intake: Intake = Field(default=Intake.CAMERA, description="camera: a rule on detections; sensor: IoT "
                           "alerts (POST /intake/sensor); device: the agent about its own cameras. The last "
                           "two have no labels, rule, params or zone kinds")
    coco: bool = Field(description="a COCO-80 detector (the default model) can drive it")
    labels: list[str] = Field(default_factory=list, description="detector labels the rule looks at")
    rule: RuleType | None = Field(default=None, description="the edge rule type (camera classes)")
    params: dict[str, Any] = Field(default_factory=dict, description="default rule parameters")
    zone_kinds: list[ZoneKind] = Field(default_factory=list, description="zone kinds the class is meant for")
    sla_hours: float = Field(gt=0, description="default handling deadline in working hours")
    priority: Priority = Priority.NORMAL
    keywords: list[str] = Field(default_factory=list)
    detect: str = Field(default="", description="how the rule reads the scene, for people")
    plates: bool = Field(default=False, description="parking evidence: the edge reads the plates of the "
                         "class's vehicles (car, truck, bus, motorcycle) and sends the timed stills")

    @model_validator(mode="after")
    def _plates_need_vehicles(self) -> ProblemClass:
        if self.plates and not set(self.labels) & PLATE_LABELS:
            raise ValueError(f"plates: the class's labels {self.labels} hold no vehicle with a plate "
                             f"({', '.join(sorted(PLATE_LABELS))})")
        return self

    @model_validator(mode="after")
    def _params_fit_rule(self) -> ProblemClass:
        if self.intake is not Intake.CAMERA:
            extra = [name for name in ("labels", "rule", "params", "zone_kinds") if getattr(self, name)]
            if extra or self.coco:
                raise ValueError(f"a {self.intake.value} class has no {', '.join(extra) or 'coco'}: no camera "
                                 "rule reports it")
            return self
        missing = [name for name in ("labels", "rule", "zone_kinds") if not getattr(self, name)]
        if missing:
            raise ValueError(f"a camera class needs {', '.join(missing)}")
        typed = self.typed_params()  # raises with the field path
        stray = typed.used_labels() - set(self.labels)
        if stray:
            raise ValueError(f"params name labels {sorted(stray)} that are not in labels {self.labels}")
        return self

    def typed_params(self, overrides: Mapping[str, Any] | None = None) -> RuleParams:
        """Default params merged with `overrides`, validated against this class's rule type."""
        if self.rule is None:
            raise ValueError(f"{self.id} is reported by {self.intake.value}s, not by a camera rule: "
                             "it has no rule parameters")
        merged = {**self.params, **(overrides or {})}
        try:
            return PARAMS_BY_RULE[self.rule].model_validate(merged)
        except ValidationError as exc:
            raise ValueError(f"{self.rule.value} rule: {format_validation_error(exc, 'params')}") from None

    def label_groups(self) -> list[frozenset[str]]:
        return self.typed_params().label_groups(self.labels)

    def open311(self) -> Open311Service:
        return Open311Service(
            service_code=self.id,
            service_name=f"{self.name_zh} {self.name_en}",
            description=self.detect or self.name_en,
            metadata=False,
            type="realtime",
            keywords=",".join([*self.keywords, self.code or ""]).strip(","),
            group=self.family.value,
        )


class InactiveClass(NamedTuple):
    problem_class: ProblemClass
    missing_labels: tuple[str, ...]  # the model lacks all of these (any one would do per group)


class Catalog(WireModel):
    version: int = Field(ge=1)
    classes: list[ProblemClass] = Field(min_length=1)

    @field_validator("classes")
    @classmethod
    def _unique_ids(cls, classes: list[ProblemClass]) -> list[ProblemClass]:
        seen: set[str] = set()
        dupes = sorted({c.id for c in classes if c.id in seen or seen.add(c.id)})  # type: ignore[func-returns-value]
        if dupes:
            raise ValueError(f"duplicate class ids: {dupes}")
        return classes

    def __iter__(self) -> Iterator[ProblemClass]:  # type: ignore[override]
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    def __contains__(self, class_id: object) -> bool:
        return any(c.id == class_id for c in self.classes)

    def get(self, class_id: str) -> ProblemClass:
        for c in self.classes:
            if c.id == class_id:
                return c
        raise KeyError(f"unknown problem class {class_id!r}")

    def ids(self) -> list[str]:
        return [c.id for c in self.classes]

    def active_for(self, labels: Iterable[str]) -> tuple[list[ProblemClass], list[InactiveClass]]:
        """Split camera classes into those the model's labels can drive and those missing labels
        (sensor classes are neither: no model drives them)."""
        have = set(labels)
        active: list[ProblemClass] = []
        inactive: list[InactiveClass] = []
        for c in self.classes:
            if c.intake is not Intake.CAMERA:
                continue
            missing = [g for g in c.label_groups() if not g & have]
            if missing:
                inactive.append(InactiveClass(c, tuple(sorted(set().union(*missing)))))
            else:
                active.append(c)
        return active, inactive


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and validate a catalog YAML (default: the packaged `protocol/catalog.yaml`)."""
    if path is None:
        text = resources.files("protocol").joinpath("catalog.yaml").read_text(encoding="utf-8")
        source = "protocol/catalog.yaml"
    else:
        text = Path(path).read_text(encoding="utf-8")
        source = str(path)
    try:
        return Catalog.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        raise ValueError(f"{source}: {format_validation_error(exc)}") from None


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """The packaged catalog, loaded once per process."""
    return load_catalog()
