"""Judge a candidate model against the one in service on a dataset's held-out split.

Both models see the same frames. Per class: precision, recall, mAP@0.5 and mAP@0.5:0.95 over
everything scored above a low threshold, and precision/recall at the model's operating threshold
(what reviewers will see); ms per frame. Classes are matched by name (case, spaces and underscores
ignored), so a model with more labels than the dataset is fine. A class is *active* when the model
in service has it; the candidate is flagged when it is worse than the old model on any active class
that the split has examples of (AP@0.5 or precision at the operating threshold lower by > margin).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from models.evaluate import ClassMetrics, EvalReport, LabelError, evaluate

LOW_THRESHOLD = 0.05  # scores kept for mAP


class Scored(Protocol):
    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray


class Model(Protocol):
    @property
    def labels(self) -> tuple[str, ...]: ...

    def detect(self, images: Sequence[np.ndarray]) -> Sequence[Scored]: ...


def label_key(label: str) -> str:
    return label.lower().replace(" ", "_").replace("-", "_")


@dataclass(frozen=True)
class ModelScore:
    name: str
    report: EvalReport  # above LOW_THRESHOLD
    at_operating: EvalReport  # above the model's own thresholds
    ms_per_frame: float
    active: frozenset[str]  # dataset classes the model has

    def row(self, label: str) -> tuple[ClassMetrics, ClassMetrics]:
        return (next(c for c in self.report.per_class if c.label == label),
                next(c for c in self.at_operating.per_class if c.label == label))


def score_model(name: str, model: Model, operating: np.ndarray, images: Sequence[Path], labels_dir: Path,
                classes: Sequence[str], on_progress: Callable[[int], None] | None = None) -> ModelScore:
    """`operating` (len(model.labels),) the score each class must reach in service."""
    wanted = {label_key(c): i for i, c in enumerate(classes)}
    to_dataset = np.array([wanted.get(label_key(label), -1) for label in model.labels], np.int64)
    predictions = []
    elapsed = 0.0
    for path in images:
        frame = cv2.imread(str(path))
        if frame is None:
            raise LabelError(f"{path}: not a readable image")
        started = time.perf_counter()
        found = model.detect([frame])[0]
        elapsed += time.perf_counter() - started
        mapped = to_dataset[found.class_id]
        keep = mapped >= 0
        predictions.append((found.xyxy[keep], found.confidence[keep], mapped[keep],
                            operating[found.class_id[keep]], (frame.shape[1], frame.shape[0])))
        if on_progress:
            on_progress(1)
    index = {path: i for i, path in enumerate(images)}

    def replay(at_operating: bool):
        def predict(paths):
            out = []
            for path in paths:
                xyxy, scores, class_ids, thresholds, wh = predictions[index[path]]
                keep = scores >= thresholds if at_operating else scores >= LOW_THRESHOLD
                out.append((xyxy[keep], scores[keep], class_ids[keep], wh))
            return out
        return predict

    return ModelScore(name, evaluate(images, labels_dir, replay(False), classes),
                      evaluate(images, labels_dir, replay(True), classes),
                      1000 * elapsed / max(len(images), 1),
                      frozenset(c for c in classes if label_key(c) in {label_key(x) for x in model.labels}))


@dataclass(frozen=True)
class Verdict:
    worse: list[str]  # "class: why" for every active class the candidate is worse on

    @property
    def flagged(self) -> bool:
        return bool(self.worse)


def compare(old: ModelScore, new: ModelScore, margin: float = 0.02) -> Verdict:
    worse = []
    for label in sorted(old.active):
        (old_all, old_op), (new_all, new_op) = old.row(label), new.row(label)
        if old_all.n_true == 0:
            continue
        if label not in new.active:
            worse.append(f"{label}: {new.name} has no such label")
            continue
        if _lower(new_all.ap50, old_all.ap50, margin):
            worse.append(f"{label}: AP50 {new_all.ap50:.3f} < {old_all.ap50:.3f}")
        if _lower(new_op.precision, old_op.precision, margin):
            worse.append(f"{label}: precision at operating threshold {new_op.precision:.3f} < {old_op.precision:.3f}")
    return Verdict(worse)


def _lower(new: float, old: float, margin: float) -> bool:
    new = 0.0 if np.isnan(new) else new
    return not np.isnan(old) and new < old - margin


def format_comparison(old: ModelScore, new: ModelScore, verdict: Verdict) -> list[str]:
    lines = [f"{'class':<18}{'model':<22}{'true':>5}{'P':>7}{'R':>7}{'mAP50':>7}{'mAP50-95':>9}"
             f"{'P@op':>7}{'R@op':>7}"]
    for base in old.report.per_class:
        if base.n_true == 0 and not any(m.row(base.label)[0].n_pred for m in (old, new)):
            continue
        for score in (old, new):
            full, op = score.row(base.label)
            lines.append(f"{base.label if score is old else '':<18}{score.name[:21]:<22}{full.n_true:>5}"
                         f"{_f(full.precision)}{_f(full.recall)}{_f(full.ap50)}{_f(full.ap50_95, 9)}"
                         f"{_f(op.precision)}{_f(op.recall)}")
    lines.append(f"ms per frame: {old.name} {old.ms_per_frame:.1f}, {new.name} {new.ms_per_frame:.1f} "
                 f"({old.report.images} held-out frames)")
    if verdict.flagged:
        lines.append(f"WORSE: {new.name} is worse than {old.name} on an active class:")
        lines.extend(f"  {w}" for w in verdict.worse)
    else:
        lines.append(f"ok: {new.name} is not worse than {old.name} on any active class")
    return lines


def _f(value: float, width: int = 7) -> str:
    return f"{'-':>{width}}" if np.isnan(value) else f"{value:>{width}.3f}"
