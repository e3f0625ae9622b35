"""RuleConfig: one problem class applied to one or more zones of a camera, with a schedule.

```yaml
rules:
  - class_id: illegal_car_parking
    zones: [np_top_right]
    params: {min_dwell_s: 30}          # overrides of the catalog's defaults, checked against the rule type
    cooldown_s: 120
    min_score: 0.4
  - class_id: stall_occupying_road
    zones: [tidal_1]
    schedule:
      mode: allowed                    # stalls are allowed in these windows; the rule runs outside them
      windows: [{days: daily, start: "18:00", end: "23:00"}]
  - class_id: exposed_garbage          # no detector label needed: "something appeared and stayed"
    zones: [walk]
    source: change                     # params are then edge_agent.change.params.ChangeParams
    params: {min_dwell_s: 600, min_area_frac: 0.01}
  - class_id: overflowing_garbage_bin  # a few-shot state head on the zone's crop, every 5 s
    zones: [bins]
    source: state                      # params are then edge_agent.zone_state.StateParams
    params: {model: heads/bins-full.json, min_dwell_s: 600}
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from edge_agent.change.params import ChangeParams
from edge_agent.schedule import Schedule, ScheduleConfig
from protocol.catalog import (
    Catalog,
    ProblemClass,
    RuleParams,
    RuleType,
    default_catalog,
    format_validation_error,
)

if TYPE_CHECKING:
    from edge_agent.zone_state import StateParams


class RuleSchedule(ScheduleConfig):
    """A schedule plus what its windows mean for the rule.

    mode active: the rule runs inside the windows (trucks banned 07:00-09:00).
    mode allowed: the windows are when the thing is allowed, so the rule runs outside them (a tidal stall
    zone that allows stalls 18:00-23:00).
    """

    mode: Literal["active", "allowed"] = "active"

    def bind(self, timezone: str) -> RuleClock:
        return RuleClock(Schedule(self, timezone), self.mode)


class RuleClock:
    """Whether a rule runs at a moment: its schedule read through its mode."""

    def __init__(self, schedule: Schedule | None, mode: Literal["active", "allowed"] = "active") -> None:
        self.schedule = schedule
        self.mode = mode

    def running(self, epoch_s: float) -> bool:
        if self.schedule is None:
            return True
        inside = self.schedule.active(epoch_s)
        return inside if self.mode == "active" else not inside


class RuleConfig(BaseModel):
    """One rule on a camera. `class_id` must be in the catalog; `params` override its defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    class_id: str = Field(pattern=r"^[a-z0-9_]{2,64}$", description="problem catalog id")
    id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="rule instance id, unique per camera; default '<class_id>@<zones>'")
    zones: list[str] = Field(min_length=1, description="zone ids this rule watches (one problem per zone)")
    source: Literal["detector", "change", "state"] = Field(
        default="detector",
        description="detector: the class's rule on detector tracks; change: a region of the zone that "
        "appeared and stayed (no label needed; garbage, debris, dumping), see edge_agent/change; state: a "
        "few-shot state head on the zone's crop at a low rate (a bin area full), see edge_agent/zone_state")
    params: dict[str, Any] = Field(default_factory=dict, description="overrides of the catalog defaults")
    schedule: RuleSchedule | None = Field(default=None, description="when the rule runs; None: always")
    cooldown_s: float = Field(
        default=60.0, ge=0,
        description="after a problem clears, the same place cannot open a new one for this long "
        "(line zones: after any opened event)")
    min_score: float = Field(default=0.3, ge=0, le=1, description="ignore tracks scored below this")
    enabled: bool = True

    @field_validator("zones", mode="before")
    @classmethod
    def _one_zone_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("zones")
    @classmethod
    def _unique_zones(cls, zones: list[str]) -> list[str]:
        if len(set(zones)) != len(zones):
            raise ValueError(f"zone ids repeat: {zones}")
        return zones

    @field_validator("class_id")
    @classmethod
    def _known_class(cls, class_id: str, info: ValidationInfo) -> str:
        catalog = _catalog(info)
        if class_id not in catalog:
            raise ValueError(f"unknown problem class {class_id!r}; see protocol/catalog.yaml "
                             f"(e.g. {', '.join(catalog.ids()[:4])}, ...)")
        return class_id

    @field_validator("params")
    @classmethod
    def _params_fit_rule(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        class_id = info.data.get("class_id")  # absent when class_id itself failed
        catalog = _catalog(info)
        if not isinstance(class_id, str) or class_id not in catalog:
            return params
        problem_class = catalog.get(class_id)
        source = info.data.get("source")
        if source == "change":
            try:
                ChangeParams.for_class(problem_class.params, params)
            except ValidationError as exc:
                raise ValueError(f"change rule: {format_validation_error(exc, 'params')}") from None
        elif source == "state":
            from edge_agent.zone_state import StateParams

            try:
                StateParams.for_class(problem_class.params, params)
            except ValidationError as exc:
                raise ValueError(f"state rule: {format_validation_error(exc, 'params')}") from None
        else:
            problem_class.typed_params(params)  # raises naming params.<field>
        return params

    @model_validator(mode="after")
    def _change_fits_class(self, info: ValidationInfo) -> RuleConfig:
        if self.source == "detector" or self.class_id not in (catalog := _catalog(info)):
            return self
        rule = catalog.get(self.class_id).rule
        if rule is RuleType.LINE_CROSSING or rule is None:
            raise ValueError(f"source {self.source}: class {self.class_id!r} is not about a place that changes (line "
                             "crossings, sensor and device classes cannot come from a zone's look)")
        return self

    @property
    def rule_id(self) -> str:
        return self.id or f"{self.class_id}@{'+'.join(self.zones)}"

    def problem_class(self, catalog: Catalog | None = None) -> ProblemClass:
        return (catalog or default_catalog()).get(self.class_id)

    def typed_params(self, catalog: Catalog | None = None) -> RuleParams:
        return self.problem_class(catalog).typed_params(self.params)

    def change_params(self, catalog: Catalog | None = None) -> ChangeParams:
        """The params of a `source: change` rule: the class's dwell and clear times, then the rule's own."""
        return ChangeParams.for_class(self.problem_class(catalog).params, self.params)

    def state_params(self, catalog: Catalog | None = None) -> StateParams:
        """The params of a `source: state` rule: the class's dwell and clear times, then the rule's own."""
        from edge_agent.zone_state import StateParams

        return StateParams.for_class(self.problem_class(catalog).params, self.params)

    def clock(self, timezone: str) -> RuleClock:
        return self.schedule.bind(timezone) if self.schedule else RuleClock(None)


def _catalog(info: ValidationInfo) -> Catalog:
    """The catalog to check against: `context={"catalog": ...}` when validating, else the packaged one."""
    ctx = info.context or {}
    catalog = ctx.get("catalog") if isinstance(ctx, dict) else None
    return catalog if isinstance(catalog, Catalog) else default_catalog()
