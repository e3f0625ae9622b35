"""Few-shot heads (models/fewshot.py): the probe, cross-validation, boxes from a map, the head file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.fewshot import (
    Backbone,
    FewShotError,
    FewShotModel,
    Head,
    boxes_from_map,
    cell_features,
    cell_samples,
    cross_validate,
    fit_offsets,
    fit_probe,
    load_model,
)


def blobs(n_pos: int, n_neg: int, dims: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centre = np.zeros(dims)
    centre[:3] = 2.5
    x = np.vstack([rng.normal(centre, 1.0, (n_pos, dims)), rng.normal(0, 1.0, (n_neg, dims))])
    return x.astype(np.float32), np.r_[np.ones(n_pos), np.zeros(n_neg)].astype(np.int8)


def test_probe_learns_a_rare_class_from_few_examples():
    x, y = blobs(20, 2000)
    probe = fit_probe(x, y)
    test_x, test_y = blobs(200, 2000, seed=1)
    p = probe.probability(test_x)
    assert ((p >= 0.5) == (test_y == 1)).mean() > 0.95
    assert p[test_y == 1].mean() > 0.8  # balanced weights: 20 positives are not drowned by 2000 negatives


def test_probe_needs_both_classes_and_matching_dimensions():
    x, y = blobs(5, 5)
    with pytest.raises(FewShotError, match="0 negative"):
        fit_probe(x[:5], y[:5])
    with pytest.raises(FewShotError, match="expects 16"):
        fit_probe(x, y).probability(np.zeros((1, 3)))


def test_cross_validation_is_out_of_fold():
    # labels independent of the features: out-of-fold AP must stay near chance, not near 1
    rng = np.random.default_rng(2)
    groups = [(rng.normal(size=(40, 16)).astype(np.float32), (rng.random(40) < 0.2).astype(np.int8))
              for _ in range(10)]
    noise = cross_validate(groups, folds=5)
    signal = cross_validate([blobs(8, 40, seed=s) for s in range(10)], folds=5)
    assert noise.average_precision < 0.5 < 0.9 < signal.average_precision
    assert signal.positives == 80 and signal.negatives == 400 and signal.folds == 5


def test_cell_samples_mark_the_box_and_leave_its_rim_out():
    features = np.arange(2 * 10 * 10, dtype=np.float32).reshape(2, 10, 10)
    box = np.array([[0.42, 0.42, 0.58, 0.68]])  # centres 0.45 and 0.55 across; 0.45..0.65 down
    x, y, offsets = cell_samples(features, box)
    assert y.sum() == 2 * 3
    assert len(y) == 100 - (4 * 5 - 6)  # the ring of cells around the box is neither
    assert np.allclose(offsets[y == 1].mean(axis=0), [0.0, 0.0], atol=0.05)  # symmetric about the centre
    x, y, _ = cell_samples(features, np.zeros((0, 4)))
    assert len(y) == 100 and y.sum() == 0  # a hard negative: every cell


def test_cell_features_upsample_the_coarser_map():
    fine, coarse = np.zeros((3, 4, 4), np.float32), np.arange(4, dtype=np.float32).reshape(1, 2, 2)
    cells = cell_features([fine, coarse])
    assert cells.shape == (4, 4, 4)
    assert cells[3, 0, 0] == 0 and cells[3, 3, 3] == 3 and cells[3, 1, 2] == 1


def test_boxes_from_map_centre_on_the_weighted_cells():
    probability = np.zeros((10, 20), np.float32)
    probability[2, 4], probability[2, 5] = 0.9, 0.9  # one object straddling two cells
    probability[7, 15] = 0.6
    boxes, scores = boxes_from_map(probability, 0.5, (0.1, 0.2))
    assert len(boxes) == 2
    assert np.allclose(boxes[0], [0.25 - 0.05, 0.25 - 0.1, 0.25 + 0.05, 0.25 + 0.1], atol=1e-6)
    assert scores.tolist() == pytest.approx([0.9, 0.6])
    offsets = np.zeros((10, 20, 2), np.float32)
    offsets[7, 15] = (0.5, -0.5)  # half a cell right and up
    moved, _ = boxes_from_map(probability, 0.5, (0.1, 0.2), offsets)
    assert moved[1][0] - boxes[1][0] == pytest.approx(0.5 / 20)
    assert moved[1][1] - boxes[1][1] == pytest.approx(-0.5 / 10)


def test_offsets_are_learned():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    target = np.stack([0.4 * x[:, 0], -0.3 * x[:, 1]], axis=1)
    regressor = fit_offsets(x, target, l2=1.0)
    assert np.abs(regressor.offsets(x) - target).max() < 0.05


def _model(tmp_path) -> tuple[FewShotModel, object]:
    x, y = blobs(10, 100)
    head = Head("traffic_cone", fit_probe(x, y), 0.7, (0.02, 0.04), {"folds": 5},
                fit_offsets(x[:10], np.zeros((10, 2), np.float32)))
    model = FewShotModel("cones", "cells", Backbone("coco-nanodet", "ab" * 32, ("t8", "t16")), (head,), (416, 416))
    path = tmp_path / "cones.json"
    model.save(path)
    return model, path


def test_head_file_round_trips(tmp_path):
    model, path = _model(tmp_path)
    loaded = load_model(path)
    assert loaded.labels == ("traffic_cone",) and loaded.backbone == model.backbone
    x, _ = blobs(5, 5, seed=9)
    assert np.allclose(loaded.heads[0].probe.probability(x), model.heads[0].probe.probability(x))
    assert np.allclose(loaded.heads[0].offsets.weights, model.heads[0].offsets.weights)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(format="other/1"), "format must be 'cityeye-fewshot/1'"),
    (lambda d: d["heads"][0].pop("weights"), "missing field 'weights'"),
    (lambda d: d["heads"][0].update(weights="AAAAAA=="), r"heads\[0\]: mean, scale and weights differ"),
    (lambda d: d["heads"][0].update(mean="not base64!"), r"heads\[0\].mean: not base64"),
    (lambda d: d.update(kind="boxes"), "kind must be 'cells' or 'state'"),
])
def test_bad_head_file_names_the_field(tmp_path, edit, message):
    _, path = _model(tmp_path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(FewShotError, match=message):
        load_model(path)


def test_maps_match_the_row_wise_probe():
    x, y = blobs(30, 300, dims=6)
    probe, regressor = fit_probe(x, y), fit_offsets(x, np.stack([x[:, 0], x[:, 1]], axis=1), l2=1.0)
    cells = np.random.default_rng(4).normal(size=(6, 5, 7)).astype(np.float32)
    rows = cells.reshape(6, -1).T
    assert np.allclose(probe.probability_map(cells), probe.probability(rows).reshape(5, 7), atol=1e-5)
    assert np.allclose(regressor.offset_map(cells), regressor.offsets(rows).reshape(5, 7, 2), atol=1e-4)
