"""Decoders on hand-made tensors: the box each head should produce is worked out by hand."""

import numpy as np

from edge_agent import decoders


def test_nanodet_single_cell_peaked_distribution():
    # input 32x32, stride 8 -> 4x4 grid; cell 6 is (x=2, y=1): centre (20, 12)
    reg_max, nc = 10, 3
    cls = np.zeros((16, nc), np.float32)
    cls[6, 2] = 0.9
    box = np.full((16, 4 * (reg_max + 1)), -50.0, np.float32)
    for side, bin_index in enumerate([1, 0, 2, 1]):  # left 1, top 0, right 2, bottom 1 (stride units)
        box[6, side * (reg_max + 1) + bin_index] = 50.0
    xyxy, scores, class_ids = decoders.decode_nanodet([cls], [box], [8], (32, 32), reg_max,
                                                      np.full(nc, 0.3, np.float32))
    np.testing.assert_allclose(xyxy, [[20 - 8, 12 - 0, 20 + 16, 12 + 8]], atol=1e-3)
    assert scores.tolist() == [np.float32(0.9)] and class_ids.tolist() == [2]


def test_nanodet_distribution_expectation_between_bins():
    reg_max = 4
    cls = np.array([[0.8]], np.float32)
    box = np.full((1, 4 * 5), -50.0, np.float32)
    for side in range(4):  # equal mass on bins 1 and 2 -> distance 1.5 strides
        box[0, side * 5 + 1] = box[0, side * 5 + 2] = 10.0
    xyxy, _, _ = decoders.decode_nanodet([cls], [box], [16], (16, 16), reg_max, np.array([0.5], np.float32))
    np.testing.assert_allclose(xyxy, [[8 - 24, 8 - 24, 8 + 24, 8 + 24]], atol=1e-3)


def test_per_class_thresholds_filter():
    out = np.zeros((4 + 2, 2), np.float32)
    out[:4, 0] = [50, 50, 20, 10]
    out[:4, 1] = [10, 10, 4, 4]
    out[4, 0] = 0.4  # class 0 at 0.4
    out[5, 1] = 0.4  # class 1 at 0.4
    xyxy, scores, class_ids = decoders.decode_yolo(out, np.array([0.3, 0.5], np.float32))
    assert class_ids.tolist() == [0]
    np.testing.assert_allclose(xyxy, [[40, 45, 60, 55]])


def test_end2end_rows():
    out = np.array([[1, 2, 3, 4, 0.9, 1], [0, 0, 1, 1, 0.1, 0], [5, 5, 9, 9, 0.8, 7]], np.float32)
    xyxy, scores, class_ids = decoders.decode_end2end(out, np.full(2, 0.25, np.float32))
    assert class_ids.tolist() == [1]  # class 7 is out of range, 0.1 is below threshold
    np.testing.assert_allclose(xyxy, [[1, 2, 3, 4]])


def test_nms_is_class_aware():
    xyxy = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    class_ids = np.array([0, 0, 1, 0], np.int32)
    keep = decoders.nms(xyxy, scores, class_ids, iou_threshold=0.5)
    assert sorted(keep.tolist()) == [0, 2, 3]  # box 1 overlaps box 0 of its class; box 2 is another class


def test_nms_over_one_iou_matrix_keeps_what_the_row_by_row_pass_keeps(monkeypatch):
    """IoUs as one matrix (candidates <= _NMS_MATRIX_MAX) against a row per kept box (above it) on random
    boxes with ties, duplicates and max_det cuts: the same indices in the same order."""
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(0, 300))
        xy = rng.uniform(0, 400, (n, 2)).astype(np.float32)
        wh = rng.uniform(1, 80, (n, 2)).astype(np.float32)
        if trial % 3 == 0:  # snapped: identical boxes and equal scores
            xy, wh = np.round(xy / 20) * 20, np.round(wh / 10) * 10 + 1
        scores = rng.uniform(0, 1, n).astype(np.float32)
        if trial % 5 == 0:
            scores = np.round(scores, 1)
        class_ids = rng.integers(0, 4, n).astype(np.int32)
        max_det = int(rng.integers(1, 400))
        args = (np.concatenate([xy, xy + wh], axis=1), scores, class_ids, 0.5, max_det)
        fast = decoders.nms(*args)
        with monkeypatch.context() as m:
            m.setattr(decoders, "_NMS_MATRIX_MAX", -1)
            slow = decoders.nms(*args)
        assert fast.tolist() == slow.tolist(), f"trial {trial}"
