"""Does a derived model (an int8 copy) find what the model it came from finds, and how much CPU does it save?

Both models run on the same frames at their operating thresholds (the manifest's score thresholds: what
the edge would report). Per class the reference's boxes stand as truth and the candidate's are matched
to them one to one at IoU >= 0.5, best score first (models/evaluate.py's COCO matching). A class's
agreement is matched / the larger of the two counts, so missed objects and extra ones both lower it.
Timing is CPU time per frame (`time.process_time`) of a whole `detect` call: prepare, inference, decode;
run it on single-threaded detectors so it measures work, not waiting.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from models.evaluate import match_image

MIN_JUDGED = 20  # a class with fewer reference detections is reported but does not decide
IOU = 0.5


class Found(Protocol):
    """One frame's detections, read only (edge_agent.types.Detections)."""

    @property
    def xyxy(self) -> np.ndarray: ...

    @property
    def confidence(self) -> np.ndarray: ...

    @property
    def class_id(self) -> np.ndarray: ...


class Model(Protocol):
    @property
    def labels(self) -> tuple[str, ...]: ...

    def detect(self, images: Sequence[np.ndarray]) -> Sequence[Found]: ...


@dataclass(frozen=True)
class ClassParity:
    label: str
    reference: int  # detections of the reference (float) model
    candidate: int  # detections of the candidate (int8) model
    matched: int  # candidate boxes matched one to one with a reference box of the class at IoU >= 0.5

    @property
    def agreement(self) -> float:
        return self.matched / max(self.reference, self.candidate, 1) if self.reference or self.candidate else 1.0


@dataclass(frozen=True)
class ParityReport:
    per_class: list[ClassParity]  # classes either model found, most reference detections first
    frames: int
    reference_ms: float  # CPU ms per frame
    candidate_ms: float

    @property
    def agreement(self) -> float:
        """Over all classes: matched / the larger count, summed per class."""
        worst_counts = sum(max(c.reference, c.candidate) for c in self.per_class)
        return sum(c.matched for c in self.per_class) / worst_counts if worst_counts else 1.0

    @property
    def speedup(self) -> float:
        return self.reference_ms / self.candidate_ms if self.candidate_ms > 0 else float("nan")

    def failing(self, min_agreement: float, min_judged: int = MIN_JUDGED) -> list[ClassParity]:
        """Classes with at least `min_judged` reference detections that agree less than `min_agreement`."""
        return [c for c in self.per_class if c.reference >= min_judged and c.agreement < min_agreement]


def _run(model: Model, frames: Sequence[np.ndarray]) -> tuple[list[Found], float]:
    model.detect(frames[:1])  # the first run allocates: not part of the figure
    found, cpu = [], 0.0
    for frame in frames:
        started = time.process_time()
        found.append(model.detect([frame])[0])
        cpu += time.process_time() - started
    return found, 1000 * cpu / max(len(frames), 1)


def check_parity(reference: Model, candidate: Model, frames: Sequence[np.ndarray],
                 groups: Sequence[Sequence[str]] = ()) -> ParityReport:
    """Run both models on `frames` (HxWx3 uint8 BGR), which must be held out from any calibration.
    `groups`: labels compared as one class (named "car|truck|bus"), as the edge tracks them: a van one
    model calls a truck and the other a car is the same object to every rule on the group."""
    if reference.labels != candidate.labels:
        raise ValueError("the two models have different labels: nothing to compare class by class")
    names = _class_names(reference.labels, groups)
    ref_found, ref_ms = _run(reference, frames)
    cand_found, cand_ms = _run(candidate, frames)
    key = np.array([sorted(set(names)).index(n) for n in names])  # class id -> compared class
    shown = sorted(set(names))
    counts = np.zeros((3, len(shown)), np.int64)  # reference, candidate, matched
    for ref, cand in zip(ref_found, cand_found, strict=True):
        ref_key, cand_key = key[ref.class_id.astype(int)], key[cand.class_id.astype(int)]
        for k in set(ref_key.tolist()) | set(cand_key.tolist()):
            r, c = ref_key == k, cand_key == k
            counts[0, k] += int(r.sum())
            counts[1, k] += int(c.sum())
            counts[2, k] += int(match_image(cand.xyxy[c], cand.confidence[c], ref.xyxy[r])[:, 0].sum())
    order = sorted((k for k in range(len(shown)) if counts[0, k] or counts[1, k]),
                   key=lambda k: (-counts[0, k], shown[k]))
    per_class = [ClassParity(shown[k], int(counts[0, k]), int(counts[1, k]), int(counts[2, k])) for k in order]
    return ParityReport(per_class, len(frames), ref_ms, cand_ms)


def _class_names(labels: Sequence[str], groups: Sequence[Sequence[str]]) -> list[str]:
    """Each label's compared class: its group's name ("car|truck|bus") or itself."""
    group_of = {label: "|".join(g) for g in groups for label in g if set(g) & set(labels)}
    return [group_of.get(label, label) for label in labels]


def format_parity(report: ParityReport, min_agreement: float, names: tuple[str, str] = ("float", "int8"),
                  min_judged: int = MIN_JUDGED) -> list[str]:
    ref, cand = names
    lines = [f"{'class':<16}{ref:>8}{cand:>8}{'matched':>9}{'agree':>7}"]
    failing = {c.label for c in report.failing(min_agreement, min_judged)}
    for c in report.per_class:
        note = "  < minimum" if c.label in failing else ("" if c.reference >= min_judged else "  (too few to judge)")
        lines.append(f"{c.label:<16}{c.reference:>8}{c.candidate:>8}{c.matched:>9}{c.agreement:>7.2f}{note}")
    total = [sum(getattr(c, a) for c in report.per_class) for a in ("reference", "candidate", "matched")]
    lines.append(f"{'all':<16}{total[0]:>8}{total[1]:>8}{total[2]:>9}{report.agreement:>7.2f}"
                 f"   ({report.frames} held-out frames, IoU >= {IOU})")
    lines.append(f"CPU per frame, 1 thread: {ref} {report.reference_ms:.1f} ms, {cand} {report.candidate_ms:.1f} ms "
                 f"(x{report.speedup:.2f})")
    return lines
