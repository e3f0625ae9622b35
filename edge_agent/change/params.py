"""The knobs of change detection: per rule (`ChangeParams`, a rule's `params` under `source: change`)
and per camera (`ChangeConfig`, the camera YAML's `change:` section, shared by its change rules)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Tracks of these labels are people, vehicles and animals: they move, stop and leave on their own,
# and the detector's own rules (parking, loitering) cover them. Their boxes are masked out.
MOVER_LABELS = ("person", "bicycle", "car", "motorcycle", "bus", "truck", "train", "dog", "cat", "horse",
                "cow", "sheep", "bird")

# Catalog defaults a change rule inherits from its class (the rest of a class's params are detector-rule knobs).
INHERITED = ("min_dwell_s", "clear_after_s", "update_every_s")


class ConfirmParams(BaseModel):
    """Ask a classifier before sending: a region it scores below `min_score` is dropped (and not asked
    again while it stays), and counted (`cityeye_camera_change_rejected`).

    `model`: a state head file (`cityeye models fewshot --kind state`, e.g. crops of garbage vs clear
    pavement); its `label` confirms, anything else rejects. `by`: a confirmer the program started the
    agent with (`Pipeline(confirmers={NAME: fn})`). Exactly one of the two."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(None, min_length=1, max_length=500,
                              description="state head file (.json) whose `label` must win on the region's crop")
    label: str | None = Field(None, max_length=64, description="the head's label that confirms; default: its only one")
    by: str | None = Field(None, min_length=1, max_length=64,
                           description="name of a confirmer the agent was started with (programs, tests)")
    min_score: float = Field(0.5, ge=0.0, le=1.0, description="the score needed to send the event (a head's "
                             "probability of `label`; heads are fitted with balanced classes, so 0.5 is even odds)")

    @model_validator(mode="after")
    def _one_source(self) -> ConfirmParams:
        if (self.model is None) == (self.by is None):
            raise ValueError("confirm needs exactly one of model (a state head file) or by (a named confirmer)")
        if self.by is not None and self.label is not None:
            raise ValueError("confirm.label goes with confirm.model, not with confirm.by")
        return self

    @property
    def name(self) -> str:
        """The key of its confirmer in the pipeline's table."""
        return self.by if self.by is not None else f"{self.model}#{self.label or ''}"


class ChangeParams(BaseModel):
    """A change rule's parameters: how long a change must stay, how big it must be, when it clears."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_dwell_s: float = Field(
        600.0, gt=0, description="a region must differ from the reference, looking the same, this long; "
        "default: the class's min_dwell_s")
    clear_after_s: float = Field(
        30.0, gt=0, description="an open problem clears after its place has matched the reference this long")
    update_every_s: float | None = Field(
        None, gt=0, description="emit `updated` with fresh evidence this often while open; None: never")
    min_area_frac: float | dict[str, float] = Field(
        0.005, description="smallest region, as a fraction of its zone's area; a mapping {zone id: fraction} "
        "sets it per zone (zones not named get 0.005)")
    confirm: ConfirmParams | None = Field(None, description="optional classifier that must agree")

    @field_validator("min_area_frac")
    @classmethod
    def _fractions(cls, value: float | dict[str, float]) -> float | dict[str, float]:
        values = value.values() if isinstance(value, dict) else [value]
        bad = [v for v in values if not 0.0 < v < 1.0]
        if bad:
            raise ValueError(f"area fractions must be between 0 and 1 (exclusive), got {bad}")
        return value

    def min_area_for(self, zone_id: str) -> float:
        if isinstance(self.min_area_frac, dict):
            return self.min_area_frac.get(zone_id, 0.005)
        return self.min_area_frac

    @classmethod
    def for_class(cls, class_params: Mapping[str, Any], overrides: Mapping[str, Any]) -> ChangeParams:
        """The rule's params: the class's inherited defaults, then the rule's own."""
        inherited = {k: v for k, v in class_params.items() if k in INHERITED}
        return cls.model_validate({**inherited, **overrides})


class ChangeConfig(BaseModel):
    """How a camera analyses change (only used when one of its rules says `source: change`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    analyse_every_s: float = Field(
        1.0, gt=0, le=60, description="seconds between analyses; dwell times are minutes, so 1 s costs little")
    width: int = Field(256, ge=64, le=1280, description="width of the analysis image in pixels")
    reference_width: int = Field(
        512, ge=64, le=1920, description="width the clear reference is kept at (its crops are the evidence)")
    threshold: float = Field(
        0.10, gt=0, le=2, description="structural difference that counts as changed (log-gradient units); "
        "lower finds fainter objects and more noise")
    learn_s: float = Field(60.0, gt=0, description="seconds over which the first reference is learned")
    learn_samples: int = Field(
        8, ge=3, le=32, description="frames whose median (people and vehicles masked) is the first reference")
    adapt_s: float | None = Field(
        600.0, gt=0, description="time constant with which unchanged parts of the reference follow slow light "
        "changes; null: never")
    ignore_labels: list[str] = Field(
        default_factory=lambda: list(MOVER_LABELS),
        description="detector labels whose tracks are masked out (people, vehicles, animals)")
    mask_margin: float = Field(0.15, ge=0, le=1, description="margin around masked tracks, fraction of the box")
    fault_frac: float = Field(
        0.35, gt=0, le=1, description="a view differing over this fraction of the frame is a camera fault "
        "(knocked off its view, covered); change rules pause meanwhile")
    fault_after_s: float = Field(30.0, gt=0, description="the view must differ this long before the fault is sent")
