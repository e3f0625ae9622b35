"""Few-shot heads: linear probes on the features of a detector we already run.

A bureau teaches a class from tens of labelled examples, in seconds on CPU, without a second network:

- a **cells** head classifies every cell of the detector's feature maps (stride 8, with the stride-16
  map upsampled onto it) as "this label" or not; connected cells above the threshold become a box of
  the label's typical size, centred on their probability-weighted centre. Suited to small rigid
  things at fixed cameras (traffic cones, bins, barriers).
- a **state** head classifies a zone's crop, pooled to one vector, as in a state or not (a bin area
  overflowing, a stall spot occupied, goods outside a shop front).

Both are L2-regularised logistic regressions fitted by Newton's method (IRLS) on standardised
features with balanced class weights. This module is numpy only: the edge runs the heads with the
same code the trainer fits them with; the network and its feature taps live in `edge_agent/fewshot.py`.

A head file is JSON (`cityeye-fewshot/1`): arrays as base64 float32, the backbone model's name and
sha256 (a head never runs on another network), the operating threshold and its cross-validated metrics.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

FORMAT = "cityeye-fewshot/1"
Kind = Literal["cells", "state"]


class FewShotError(ValueError):
    """A head file or training input is unusable; the message names the file, field or example."""


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


@dataclass(frozen=True)
class LinearProbe:
    """p(label | x) = sigmoid(((x - mean) / scale) . weights + bias); x is (N, D)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def probability(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != self.weights.shape[0]:
            raise FewShotError(f"features have {x.shape[-1]} dimensions, the probe expects {self.weights.shape[0]}")
        return _sigmoid(((x - self.mean) / self.scale) @ self.weights + self.bias)

    def probability_map(self, cells: np.ndarray) -> np.ndarray:
        """(H, W) from (C, H, W) cell features; the scaling is folded into the weights (one dot per cell)."""
        channels, height, width = cells.shape
        weights = (self.weights / self.scale).astype(np.float32)
        bias = self.bias - float(self.mean @ weights)
        # einsum, not BLAS: a matrix-vector product this small loses more to BLAS threads waking up
        # beside onnxruntime's than it gains (20 ms against 0.5 ms on a busy 2-core box)
        return _sigmoid(np.einsum("c,cn->n", weights, cells.reshape(channels, -1)) + bias).reshape(height, width)


def fit_probe(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, iterations: int = 15) -> LinearProbe:
    """Logistic regression by IRLS; positives and negatives weigh the same in total (few positives)."""
    y = np.asarray(y, dtype=np.float64)
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        raise FewShotError(f"need positive and negative examples, got {int(n_pos)} positive and {int(n_neg)} negative")
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    sample_weight = np.where(y == 1, len(y) / (2 * n_pos), len(y) / (2 * n_neg))
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not shrunk
    theta = np.zeros(z.shape[1])
    for _ in range(iterations):
        p = _sigmoid(z @ theta)
        gradient = z.T @ (sample_weight * (p - y)) + penalty * theta
        hessian = (z * (sample_weight * p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-6)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.max(np.abs(step)) < 1e-6:
            break
    return LinearProbe(mean.astype(np.float32), scale.astype(np.float32), theta[:-1].astype(np.float32),
                       float(theta[-1]))


@dataclass(frozen=True)
class OffsetRegressor:
    """Where the object's centre is from a cell's centre, in cells: ((x - mean) / scale) @ weights + bias."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # (D, 2)
    bias: np.ndarray  # (2,)

    def offsets(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weights + self.bias

    def offset_map(self, cells: np.ndarray) -> np.ndarray:
        """(H, W, 2) from (C, H, W) cell features."""
        channels, height, width = cells.shape
        weights = (self.weights / self.scale[:, None]).astype(np.float32)
        bias = self.bias - self.mean @ weights
        return np.einsum("ck,cn->nk", weights, cells.reshape(channels, -1)).reshape(height, width, 2) + bias


def fit_offsets(x: np.ndarray, offsets: np.ndarray, *, l2: float = 1000.0) -> OffsetRegressor:
    """Ridge regression of the positive cells' offsets (a cell sees only part of its object: the
    features say which part, so the box lands between cells instead of on the grid)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    bias = offsets.mean(axis=0)
    weights = np.linalg.solve(z.T @ z + l2 * np.eye(z.shape[1]), z.T @ (offsets - bias))
    return OffsetRegressor(mean.astype(np.float32), scale.astype(np.float32), weights.astype(np.float32),
                           bias.astype(np.float32))


# ---- feature maps -> samples ---------------------------------------------------------------------

def cell_features(maps: Sequence[np.ndarray]) -> np.ndarray:
    """(C, H, W) per-cell features: the finest map with coarser ones repeated onto its grid.

    `maps` are one image's (C_i, H_i, W_i) feature tensors, finest first, each grid a whole
    multiple of the next (stride 8 and 16 of one input)."""
    finest = maps[0]
    height, width = finest.shape[1:]
    parts = [finest]
    for fmap in maps[1:]:
        fy, fx = height // fmap.shape[1], width // fmap.shape[2]
        up = fmap.repeat(fy, axis=1).repeat(fx, axis=2)[:, :height, :width]
        if up.shape[1:] != (height, width):
            raise FewShotError(f"feature map {fmap.shape} does not tile the finest grid {finest.shape}")
        parts.append(up)
    return np.concatenate(parts, axis=0)


def pooled_features(maps: Sequence[np.ndarray]) -> np.ndarray:
    """(D,) one vector for a whole image (a zone's crop): the mean and max of each map's channels."""
    return np.concatenate([np.concatenate([m.mean(axis=(1, 2)), m.max(axis=(1, 2))]) for m in maps])


def _cell_centres(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width]
    return (xs.ravel() + 0.5) / width, (ys.ravel() + 0.5) / height


def cell_samples(features: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows for one image and one label: (N, C) features, 0/1 targets and (N, 2) offsets.

    `features` (C, H, W); `boxes` (K, 4) normalised xyxy of the label's objects (K may be 0: a hard
    negative). A cell is positive when its centre is inside a box (the cell holding a box's centre
    always is); cells within one cell of a box but not positive are left out, being neither. The
    offset of a positive cell is from its centre to its box's centre, in cells (0 for negatives)."""
    channels, height, width = features.shape
    rows = features.reshape(channels, -1).T
    cx, cy = _cell_centres(height, width)
    positive = np.zeros(height * width, dtype=bool)
    near = np.zeros(height * width, dtype=bool)
    mx, my = 1.0 / width, 1.0 / height
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        positive |= (cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)
        col = min(int((x1 + x2) / 2 * width), width - 1)
        row = min(int((y1 + y2) / 2 * height), height - 1)
        positive[row * width + col] = True
        near |= (cx >= x1 - mx) & (cx <= x2 + mx) & (cy >= y1 - my) & (cy <= y2 + my)
    offsets = np.zeros((height * width, 2), np.float32)
    if positive.any():
        centres = np.array([((x1 + x2) / 2, (y1 + y2) / 2) for x1, y1, x2, y2 in np.asarray(boxes).reshape(-1, 4)])
        cells = np.stack([cx[positive], cy[positive]], axis=1)
        nearest = np.argmin(((cells[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
        offsets[positive] = (centres[nearest] - cells) * np.array([width, height])
    keep = positive | ~near
    return rows[keep], positive[keep].astype(np.int8), offsets[keep]


def boxes_from_map(probability: np.ndarray, threshold: float, box_wh: tuple[float, float],
                   offsets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (K, 4) normalised xyxy and scores (K,) from an (H, W) probability map.

    Each 8-connected group of cells above `threshold` is one object: a box of the label's typical
    size (`box_wh`, normalised) centred on the group's probability-weighted centre (each cell's
    centre moved by its predicted `offsets` (H, W, 2) in cells, when given), scored by its highest cell."""
    import cv2  # the edge has it; kept local so training tools can import this module cheaply

    height, width = probability.shape
    mask = (probability >= threshold).astype(np.uint8)
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    boxes, scores = [], []
    bw, bh = box_wh
    for component in range(1, count):
        ys, xs = np.nonzero(labels == component)
        weights = probability[ys, xs]
        px, py = xs + 0.5, ys + 0.5
        if offsets is not None:
            px, py = px + offsets[ys, xs, 0], py + offsets[ys, xs, 1]
        cx = float((px * weights).sum() / weights.sum()) / width
        cy = float((py * weights).sum() / weights.sum()) / height
        boxes.append((max(cx - bw / 2, 0.0), max(cy - bh / 2, 0.0), min(cx + bw / 2, 1.0), min(cy + bh / 2, 1.0)))
        scores.append(float(weights.max()))
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(scores, dtype=np.float32)


# ---- cross-validation ------------------------------------------------------------------------------

@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold scores of every training row, grouped so no image is in its own fold's training."""

    folds: int
    positives: int
    negatives: int
    threshold: float  # the operating threshold: best F1 out of fold
    precision: float
    recall: float
    average_precision: float

    def as_dict(self) -> dict[str, float | int]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _average_precision(scores: np.ndarray, y: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    hits = y[order] == 1
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / max(hits.sum(), 1))


def _best_f1(scores: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    best = (0.5, 0.0, 0.0, -1.0)
    for threshold in np.unique(np.round(scores, 3)):
        predicted = scores >= threshold
        tp = float((predicted & (y == 1)).sum())
        precision = tp / max(predicted.sum(), 1)
        recall = tp / max((y == 1).sum(), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-9)
        if f1 > best[3]:
            best = (float(threshold), precision, recall, f1)
    return best[0], float(best[1]), float(best[2])


def cross_validate(groups: Sequence[tuple[np.ndarray, np.ndarray]], *, folds: int = 5, l2: float = 1.0
                   ) -> CrossValidation:
    """k-fold over groups (one group per image): fit on the others, score the held-out group."""
    folds = max(2, min(folds, len(groups)))
    if len(groups) < 2:
        raise FewShotError(f"cross-validation needs at least 2 labelled images, got {len(groups)}")
    scores, targets = [], []
    for fold in range(folds):
        train = [g for i, g in enumerate(groups) if i % folds != fold]
        test = [g for i, g in enumerate(groups) if i % folds == fold]
        x_train = np.concatenate([g[0] for g in train])
        y_train = np.concatenate([g[1] for g in train])
        if y_train.min() == y_train.max():
            continue  # this fold's training has one class only: nothing to learn, skip it
        probe = fit_probe(x_train, y_train, l2=l2)
        for x, y in test:
            scores.append(probe.probability(x))
            targets.append(y)
    if not scores:
        raise FewShotError("every fold lacked positive or negative examples: label more images")
    s, y = np.concatenate(scores), np.concatenate(targets)
    threshold, precision, recall = _best_f1(s, y)
    return CrossValidation(folds, int((y == 1).sum()), int((y == 0).sum()), threshold, precision, recall,
                           _average_precision(s, y))


# ---- the head file -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Backbone:
    """The detector whose features a head reads; a head refuses any other (sha256)."""

    name: str
    sha256: str
    tensors: tuple[str, ...]


@dataclass(frozen=True)
class Head:
    label: str
    probe: LinearProbe
    threshold: float
    box_wh: tuple[float, float] = (0.0, 0.0)  # cells heads: the label's typical box, normalised
    validation: dict[str, float | int] = field(default_factory=dict)
    offsets: OffsetRegressor | None = None  # cells heads: where in the box each cell is


@dataclass(frozen=True)
class FewShotModel:
    name: str
    kind: Kind
    backbone: Backbone
    heads: tuple[Head, ...]
    input_wh: tuple[int, int]  # the backbone's input size the features were computed at

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(h.label for h in self.heads)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "name": self.name, "kind": self.kind, "input_wh": list(self.input_wh),
            "backbone": {"name": self.backbone.name, "sha256": self.backbone.sha256,
                         "tensors": list(self.backbone.tensors)},
            "heads": [{"label": h.label, "threshold": h.threshold, "box_wh": list(h.box_wh),
                       "validation": h.validation, "mean": _b64(h.probe.mean), "scale": _b64(h.probe.scale),
                       "weights": _b64(h.probe.weights), "bias": h.probe.bias,
                       "offsets": _offsets_json(h.offsets)} for h in self.heads],
        }, indent=1)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)


def _offsets_json(regressor: OffsetRegressor | None) -> dict | None:
    if regressor is None:
        return None
    return {"mean": _b64(regressor.mean), "scale": _b64(regressor.scale), "weights": _b64(regressor.weights),
            "bias": _b64(regressor.bias)}


def _offsets(raw: dict | None, dims: int, where: str) -> OffsetRegressor | None:
    if raw is None:
        return None
    regressor = OffsetRegressor(_array(raw["mean"], f"{where}.mean"), _array(raw["scale"], f"{where}.scale"),
                                _array(raw["weights"], f"{where}.weights").reshape(-1, 2),
                                _array(raw["bias"], f"{where}.bias"))
    if regressor.mean.shape != (dims,) or regressor.weights.shape != (dims, 2) or regressor.bias.shape != (2,):
        raise FewShotError(f"{where}: shapes do not match the probe's {dims} dimensions")
    return regressor


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()


def _array(value: object, where: str) -> np.ndarray:
    try:
        return np.frombuffer(base64.b64decode(str(value), validate=True), dtype="<f4").astype(np.float32)
    except (ValueError, TypeError) as exc:
        raise FewShotError(f"{where}: not base64 float32 data") from exc


def parse_model(text: str, source: str) -> FewShotModel:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FewShotError(f"{source}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise FewShotError(f"{source}: format must be {FORMAT!r}, got {found!r}")
    try:
        heads = []
        for i, h in enumerate(data["heads"]):
            where = f"{source}: heads[{i}]"
            probe = LinearProbe(_array(h["mean"], f"{where}.mean"), _array(h["scale"], f"{where}.scale"),
                                _array(h["weights"], f"{where}.weights"), float(h["bias"]))
            if not probe.mean.shape == probe.scale.shape == probe.weights.shape:
                raise FewShotError(f"{where}: mean, scale and weights differ in length")
            heads.append(Head(str(h["label"]), probe, float(h["threshold"]), tuple(h.get("box_wh", (0, 0))),
                              dict(h.get("validation", {})),
                              _offsets(h.get("offsets"), len(probe.weights), f"{where}.offsets")))
        if data["kind"] not in ("cells", "state"):
            raise FewShotError(f"{source}: kind must be 'cells' or 'state', got {data['kind']!r}")
        b = data["backbone"]
        return FewShotModel(str(data["name"]), data["kind"], Backbone(str(b["name"]), str(b["sha256"]),
                            tuple(b["tensors"])), tuple(heads), tuple(data["input_wh"]))
    except KeyError as exc:
        raise FewShotError(f"{source}: missing field {exc.args[0]!r}") from exc


def load_model(path: Path) -> FewShotModel:
    try:
        text = path.read_text()
    except OSError as exc:
        raise FewShotError(f"cannot read few-shot model {path}: {exc.strerror}") from exc
    return parse_model(text, str(path))


def is_fewshot_file(path: Path) -> bool:
    return path.suffix == ".json" and path.is_file()
