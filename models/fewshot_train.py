"""Fit few-shot heads from labelled frames or crops: features in, a cross-validated `FewShotModel` out.

The features come from a callable (images -> per image feature maps), in practice
`edge_agent.fewshot.FeatureDetector.detect_with_features`, so this module runs no network itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from models.dataset import LabelledFrame
from models.fewshot import (
    Backbone,
    FewShotError,
    FewShotModel,
    Head,
    cell_features,
    cell_samples,
    cross_validate,
    fit_offsets,
    fit_probe,
    pooled_features,
)

FeatureFn = Callable[[Sequence[np.ndarray]], list[list[np.ndarray]]]
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


def _read(path) -> np.ndarray:
    image = cv2.imread(str(path))
    if image is None:
        raise FewShotError(f"{path}: not a readable image")
    return image


@dataclass(frozen=True)
class Backend:
    """The network features come from."""

    features: FeatureFn
    backbone: Backbone
    input_wh: tuple[int, int]


def _check_name(name: str) -> None:
    import re

    if not re.match(NAME_PATTERN, name):
        raise FewShotError(f"model name {name!r} must be lowercase letters, digits, '_', '.', '-' (<= 64)")


def train_cells(frames: Sequence[LabelledFrame], labels: Sequence[str], backend: Backend, name: str, *,
                folds: int = 5, negatives_per_image: int = 300, l2: float = 10.0, seed: int = 0,
                on_progress: Callable[[int], None] | None = None) -> FewShotModel:
    """A cells head per label from frames with boxes; frames without the label's boxes are its negatives."""
    _check_name(name)
    if not labels:
        raise FewShotError("name at least one label to teach")
    rng = np.random.default_rng(seed)
    per_label: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {label: [] for label in labels}
    positive_rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {label: [] for label in labels}
    sizes: dict[str, list[tuple[float, float]]] = {label: [] for label in labels}
    for start in range(0, len(frames), 8):
        chunk = frames[start:start + 8]
        for frame, maps in zip(chunk, backend.features([_read(f.image) for f in chunk]), strict=True):
            cells = cell_features(maps)
            for label in labels:
                boxes = np.array([b.xyxy for b in frame.boxes if b.label == label], np.float64).reshape(-1, 4)
                sizes[label].extend((x2 - x1, y2 - y1) for x1, y1, x2, y2 in boxes)
                x, y, offsets = cell_samples(cells, boxes)
                positive_rows[label].append((x[y == 1], offsets[y == 1]))
                negative = np.flatnonzero(y == 0)
                if len(negative) > negatives_per_image:  # every positive stays; negatives are plenty
                    keep = np.concatenate([np.flatnonzero(y == 1), rng.choice(negative, negatives_per_image,
                                                                               replace=False)])
                    x, y = x[keep], y[keep]
                per_label[label].append((x.astype(np.float32), y))
        if on_progress:
            on_progress(len(chunk))
    heads = []
    for label in labels:
        if not sizes[label]:
            raise FewShotError(f"no box labelled {label!r} in the {len(frames)} training frames")
        groups = per_label[label]
        validation = cross_validate(groups, folds=folds, l2=l2)
        probe = fit_probe(np.concatenate([g[0] for g in groups]), np.concatenate([g[1] for g in groups]), l2=l2)
        box_wh = tuple(float(v) for v in np.median(np.array(sizes[label]), axis=0))
        offsets = fit_offsets(np.concatenate([r[0] for r in positive_rows[label]]),
                              np.concatenate([r[1] for r in positive_rows[label]]))
        heads.append(Head(label, probe, validation.threshold, box_wh, validation.as_dict(), offsets))
    return FewShotModel(name, "cells", backend.backbone, tuple(heads), backend.input_wh)


def train_state(crops: Sequence[tuple[np.ndarray, bool]], label: str, backend: Backend, name: str, *,
                folds: int = 5) -> FewShotModel:
    """A state head from crops (BGR image, in the state or not), e.g. a bin area full or not."""
    _check_name(name)
    positives = sum(1 for _, yes in crops if yes)
    if positives < 2 or len(crops) - positives < 2:
        raise FewShotError(f"a state head needs at least 2 crops in the state and 2 not, got {positives} and "
                           f"{len(crops) - positives}")
    vectors = [pooled_features(maps) for maps in backend.features([c for c, _ in crops])]
    groups = [(v[None, :].astype(np.float32), np.array([int(yes)], np.int8))
              for v, (_, yes) in zip(vectors, crops, strict=True)]
    validation = cross_validate(groups, folds=folds)
    probe = fit_probe(np.stack(vectors), np.array([int(yes) for _, yes in crops]))
    head = Head(label, probe, validation.threshold, (0.0, 0.0), validation.as_dict())
    return FewShotModel(name, "state", backend.backbone, (head,), backend.input_wh)
