"""Zone-state rules (`source: state`): a few-shot state head run on a zone's crop at a low rate.

A fixed place has states a detector has no label for: a bin area full or overflowing, a stall spot
occupied, goods outside a shop front. `cityeye models fewshot --kind state` teaches one from tens of
crops (models/fewshot_train.py); this module runs it in the pipeline:

```yaml
rules:
  - class_id: overflowing_garbage_bin
    zones: [bins]
    source: state
    params: {model: heads/bins-full.json, every_s: 5, min_dwell_s: 600}
```

Every `every_s` seconds (default 5 s: 0.2 Hz, one extra inference per zone) the head scores the crop
of the zone's bounding box. A probability at or above `min_score` (default 0.5) means the zone is in
the state. An event opens once the state has held for `min_dwell_s`
and clears once it has not held for `clear_after_s` (the lifecycle is edge_agent.rules.base's).

The same heads confirm change regions (`source: change` rules' `params.confirm.model`): `HeadConfirmer`.
`StateHeads` loads each head file once per agent (each holds a session of its backbone).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.geometry import Box
from edge_agent.rules.base import refresh_open
from edge_agent.rules.config import RuleClock, RuleConfig
from edge_agent.types import Frame, ProblemUpdate
from edge_agent.zones import ZoneConfig
from protocol.catalog import Catalog, ProblemClass
from protocol.messages import ProblemState

log = logging.getLogger(__name__)

INHERITED = ("min_dwell_s", "clear_after_s", "update_every_s")  # catalog defaults a state rule takes


class StateParams(BaseModel):
    """A `source: state` rule's params: which head, how often, how long the state must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=500, description="state head file (.json) from "
                       "`cityeye models fewshot --kind state`; a relative path is taken from the agent's directory")
    state: str | None = Field(None, max_length=64, description="the head's label that is the problem; default: "
                              "its only label")
    min_score: float = Field(0.5, ge=0.0, le=1.0, description="the head's probability of `state` that means "
                             "'in the state' (heads are fitted with balanced classes: 0.5 is even odds)")
    every_s: float = Field(5.0, ge=0.5, le=3600, description="seconds between evaluations (default 0.2 Hz: "
                           "states of places change over minutes)")
    min_dwell_s: float = Field(600.0, gt=0, description="the state must hold this long before the event")
    clear_after_s: float = Field(30.0, gt=0, description="the event clears once the state has not held this long")
    update_every_s: float | None = Field(None, gt=0, description="emit `updated` this often while open; None: never")

    @classmethod
    def for_class(cls, class_params: Mapping[str, Any], overrides: Mapping[str, Any]) -> StateParams:
        inherited = {k: v for k, v in class_params.items() if k in INHERITED}
        return cls.model_validate({**inherited, **overrides})


class Classifier(Protocol):
    """edge_agent.fewshot.ZoneStateClassifier: (BGR image, xyxy pixels) -> {label: probability}."""

    def __call__(self, image: np.ndarray, xyxy: Sequence[float]) -> dict[str, float]: ...


@dataclass(frozen=True)
class LoadedHead:
    classifier: Classifier
    labels: tuple[str, ...]

    def label(self, wanted: str | None) -> str:
        return wanted or self.labels[0]


def head_issue(model: str, label: str | None) -> str | None:
    """Why the head file cannot serve (missing, not a state head, no such label), or None."""
    from models.fewshot import FewShotError, load_model

    path = Path(model)
    if path.suffix != ".json":
        return f"{model!r} is not a few-shot head file (.json from `cityeye models fewshot --kind state`)"
    try:
        head = load_model(path)
    except FewShotError as exc:
        return str(exc)
    if head.kind != "state":
        return f"{model} is a {head.kind} head; this needs a state head (`cityeye models fewshot --kind state`)"
    if label is None and len(head.labels) > 1:
        return f"{model} has several labels {list(head.labels)}: say which one with the label/state field"
    if label is not None and label not in head.labels:
        return f"{model} has no label {label!r} (it has {list(head.labels)})"
    return None


def head_issues(rules: Sequence[RuleConfig], catalog: Catalog | None = None) -> list[tuple[list[str | int], str]]:
    """(field path, message) for every head a camera's rules name that this box cannot load."""
    out: list[tuple[list[str | int], str]] = []
    for i, rule in enumerate(rules):
        if rule.source == "state":
            p = rule.state_params(catalog)
            issue = head_issue(p.model, p.state)
            if issue:
                out.append((["rules", i, "params", "model"], issue))
        elif rule.source == "change":
            confirm = rule.change_params(catalog).confirm
            if confirm is not None and confirm.model is not None:
                issue = head_issue(confirm.model, confirm.label)
                if issue:
                    out.append((["rules", i, "params", "confirm", "model"], issue))
    return out


class StateHeads:
    """Head files loaded once per agent, by path."""

    def __init__(self, *, threads: int | None = 1,
                 load: Callable[[str], LoadedHead] | None = None) -> None:
        self.threads = threads
        self._load = load or self._load_file
        self._heads: dict[str, LoadedHead] = {}

    def get(self, model: str) -> LoadedHead:
        if model not in self._heads:
            self._heads[model] = self._load(model)
        return self._heads[model]

    def _load_file(self, model: str) -> LoadedHead:
        from edge_agent.fewshot import ZoneStateClassifier

        classifier = ZoneStateClassifier.load(model, threads=self.threads)
        heads = classifier.model.heads
        return LoadedHead(classifier, tuple(h.label for h in heads))


class HeadConfirmer:
    """A state head as a change rule's confirmer: the score of `label` on the region's current crop, 0 when
    another of the head's labels scores higher (a "clear" or "other" head wins)."""

    def __init__(self, head: LoadedHead, label: str | None) -> None:
        self.head = head
        self.label = head.label(label)

    def __call__(self, class_id: str, current: np.ndarray, reference: np.ndarray) -> float:
        h, w = current.shape[:2]
        scores = self.head.classifier(current, (0, 0, w, h))
        mine = scores[self.label]
        return mine if mine >= max(scores.values()) else 0.0


@dataclass(eq=False)
class _Open:
    problem_id: str
    first_seen: float
    last_present: float
    last_emit: float
    score: float


class ZoneState:
    """One state rule on one zone."""

    def __init__(self, config: RuleConfig, problem_class: ProblemClass, params: StateParams, zone: ZoneConfig,
                 camera_id: str, clock: RuleClock, head: LoadedHead) -> None:
        self.config, self.problem_class, self.params, self.zone = config, problem_class, params, zone
        self.camera_id, self.clock, self.head = camera_id, clock, head
        self.label = head.label(params.state)
        self.since: float | None = None  # the state has held since then (None: not in it at the last check)
        self.score = 0.0
        self.last_check: float | None = None
        self.open: list[_Open] = []
        self.checks = 0

    def due(self, now: float) -> bool:
        return self.last_check is None or now - self.last_check >= self.params.every_s * 0.95

    def update(self, frame: Frame) -> list[ProblemUpdate]:
        now = frame.ts
        self.last_check = now
        self.checks += 1
        box = zone_box(self.zone, frame.resolution_wh)
        self.score = float(self.head.classifier(frame.image, box).get(self.label, 0.0))
        holds = self.score >= self.params.min_score
        self.since = (self.since if self.since is not None else now) if holds else None
        out = refresh_open(self.open, lambda _p: holds, now, update_every_s=self.params.update_every_s,
                           clear_after_s=self.params.clear_after_s,
                           emit=lambda p, state: self._emit(p, state, now, box), on_clear=lambda _p: None)
        if (holds and not self.open and self.since is not None and self.clock.running(now)
                and now - self.since >= self.params.min_dwell_s):
            p = _Open(uuid.uuid4().hex, self.since, now, now, self.score)
            self.open.append(p)
            out.append(self._emit(p, ProblemState.OPENED, now, box))
        if holds:
            for p in self.open:
                p.score = max(p.score, self.score)
        return out

    def _emit(self, p: _Open, state: ProblemState, now: float, box: Box) -> ProblemUpdate:
        end = p.last_present if state is ProblemState.CLEARED else now
        return ProblemUpdate(
            problem_id=p.problem_id, class_id=self.problem_class.id, state=state.value, camera_id=self.camera_id,
            zone=self.zone.id, xyxy=box, score=p.score, labels=(self.label,), track_ids=(), first_seen=p.first_seen,
            observed_at=now, dwell_s=max(0.0, end - p.first_seen))


def zone_box(zone: ZoneConfig, frame_wh: tuple[int, int]) -> Box:
    """The zone's bounding box in frame pixels (the crop its state head sees)."""
    w, h = frame_wh
    xs = [p[0] for p in zone.polygon or []]
    ys = [p[1] for p in zone.polygon or []]
    return (min(xs) * w, min(ys) * h, max(xs) * w, max(ys) * h)


def state_rules(rules: Sequence[RuleConfig]) -> list[RuleConfig]:
    return [r for r in rules if r.enabled and r.source == "state"]


class StateWatch:
    """All `source: state` rules of one camera; `update(frame)` evaluates those due."""

    def __init__(self, rules: Sequence[RuleConfig], zones: Sequence[ZoneConfig], camera_id: str, catalog: Catalog,
                 heads: StateHeads, *, timezone: str = "UTC") -> None:
        by_id = {z.id: z for z in zones}
        self.states: list[ZoneState] = []
        for r in state_rules(rules):
            params = r.state_params(catalog)
            head = heads.get(params.model)
            for zid in r.zones:
                self.states.append(ZoneState(r, catalog.get(r.class_id), params, by_id[zid], camera_id,
                                             r.clock(timezone), head))

    def update(self, frame: Frame) -> list[ProblemUpdate]:
        out: list[ProblemUpdate] = []
        for state in self.states:
            if state.due(frame.ts):
                out += state.update(frame)
        return out

    @property
    def checks(self) -> int:
        return sum(s.checks for s in self.states)
