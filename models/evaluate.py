"""Judge a detector on a bureau's own labelled footage: precision, recall, mAP@0.5, mAP@0.5:0.95.

Labels are YOLO format: one `<stem>.txt` per image, a line per object `class cx cy w h`, all
normalised 0-1. Matching and AP follow COCO: greedy by score, 101-point interpolated precision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class LabelError(ValueError):
    pass


def read_yolo_labels(path: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(class_ids (N,), xyxy (N, 4) pixels) from a YOLO label file; a missing file means no objects."""
    if not path.is_file():
        return np.zeros(0, np.int32), np.zeros((0, 4), np.float32)
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            cls, cx, cy, w, h = int(parts[0]), *map(float, parts[1:5])
        except (ValueError, IndexError) as exc:
            raise LabelError(f"{path}:{lineno}: expected 'class cx cy w h', got {line!r}") from exc
        rows.append((cls, (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height))
    if not rows:
        return np.zeros(0, np.int32), np.zeros((0, 4), np.float32)
    arr = np.array(rows, dtype=np.float64)
    return arr[:, 0].astype(np.int32), arr[:, 1:].astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


@dataclass
class _ClassRecords:
    scores: list[float] = field(default_factory=list)
    hits: list[np.ndarray] = field(default_factory=list)  # per detection: matched at each IoU threshold
    n_true: int = 0


def match_image(pred_xyxy: np.ndarray, pred_scores: np.ndarray, true_xyxy: np.ndarray) -> np.ndarray:
    """For one image and one class: (N_pred, T) booleans, True where the prediction is a true
    positive at IoU threshold t (each true box matched at most once, best score first)."""
    hits = np.zeros((len(pred_xyxy), len(IOU_THRESHOLDS)), dtype=bool)
    if len(pred_xyxy) == 0 or len(true_xyxy) == 0:
        return hits
    ious = _iou(pred_xyxy, true_xyxy)
    order = np.argsort(-pred_scores, kind="stable")
    for t, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(true_xyxy), dtype=bool)
        for i in order:
            candidates = np.where(~taken & (ious[i] >= threshold), ious[i], -1.0)
            j = int(candidates.argmax())
            if candidates[j] >= 0:
                taken[j] = True
                hits[i, t] = True
    return hits


def average_precision(scores: np.ndarray, hits: np.ndarray, n_true: int) -> float:
    """COCO 101-point interpolated AP for one class at one IoU threshold."""
    if n_true == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = tp / n_true
    precision = tp / np.maximum(tp + fp, 1e-9)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # make it monotone
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side="left")
    return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in idx]))


@dataclass(frozen=True)
class ClassMetrics:
    label: str
    n_true: int
    n_pred: int
    precision: float  # at IoU 0.5, over all predictions above the score threshold
    recall: float
    ap50: float
    ap50_95: float


@dataclass(frozen=True)
class EvalReport:
    per_class: list[ClassMetrics]
    images: int

    def mean(self, attr: str) -> float:
        values = [getattr(c, attr) for c in self.per_class if c.n_true > 0]
        return float(np.nanmean(values)) if values and not np.all(np.isnan(values)) else float("nan")


Predictor = Callable[[Sequence[Path]], Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]]]


def evaluate(images: Sequence[Path], labels_dir: Path, predict: Predictor, labels: Sequence[str],
             batch: int = 8, on_progress: Callable[[int], object] | None = None) -> EvalReport:
    """`predict(paths)` returns per image (xyxy, scores, class_ids, (width, height))."""
    records = [_ClassRecords() for _ in labels]
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        for path, (xyxy, scores, class_ids, (w, h)) in zip(chunk, predict(chunk), strict=True):
            true_cls, true_xyxy = read_yolo_labels(labels_dir / f"{path.stem}.txt", w, h)
            bad = true_cls[(true_cls < 0) | (true_cls >= len(labels))]
            if bad.size:
                where = labels_dir / f"{path.stem}.txt"
                raise LabelError(f"{where}: class {int(bad[0])} is not in 0..{len(labels) - 1}")
            for c in set(class_ids.tolist()) | set(true_cls.tolist()):
                p, t = class_ids == c, true_cls == c
                rec = records[c]
                rec.scores.extend(scores[p].tolist())
                rec.hits.append(match_image(xyxy[p], scores[p], true_xyxy[t]))
                rec.n_true += int(t.sum())
        if on_progress:
            on_progress(len(chunk))
    return EvalReport([_summarise(label, rec) for label, rec in zip(labels, records, strict=True)], len(images))


def _summarise(label: str, rec: _ClassRecords) -> ClassMetrics:
    scores = np.asarray(rec.scores, dtype=np.float64)
    hits = np.concatenate(rec.hits) if rec.hits else np.zeros((0, len(IOU_THRESHOLDS)), bool)
    aps = [average_precision(scores, hits[:, t], rec.n_true) for t in range(len(IOU_THRESHOLDS))]
    tp50 = int(hits[:, 0].sum())
    return ClassMetrics(
        label=label, n_true=rec.n_true, n_pred=len(scores),
        precision=tp50 / len(scores) if len(scores) else float("nan"),
        recall=tp50 / rec.n_true if rec.n_true else float("nan"),
        ap50=aps[0], ap50_95=float(np.mean(aps)) if rec.n_true else float("nan"),
    )


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def format_report(report: EvalReport, only_present: bool = True) -> Iterable[str]:
    yield f"{'class':<16}{'true':>6}{'pred':>6}{'P':>8}{'R':>8}{'mAP50':>8}{'mAP50-95':>10}"
    for c in report.per_class:
        if only_present and c.n_true == 0 and c.n_pred == 0:
            continue
        yield (f"{c.label:<16}{c.n_true:>6}{c.n_pred:>6}{c.precision:>8.3f}{c.recall:>8.3f}"
               f"{c.ap50:>8.3f}{c.ap50_95:>10.3f}")
    yield (f"{'all':<16}{sum(c.n_true for c in report.per_class):>6}{sum(c.n_pred for c in report.per_class):>6}"
           f"{report.mean('precision'):>8.3f}{report.mean('recall'):>8.3f}{report.mean('ap50'):>8.3f}"
           f"{report.mean('ap50_95'):>10.3f}   ({report.images} images)")
