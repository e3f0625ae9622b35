"""Turn raw detector output tensors into boxes (pure numpy, no runtime).

All decoders return `(xyxy, scores, class_ids)` in the model's input pixel space; the runtime maps
them back to the frame. Supported heads:

- NanoDet (GFL): per stride a class-score tensor [B, cells, C] (already sigmoid) and a box tensor
  [B, cells, 4*(reg_max+1)] holding a distribution over distances (left, top, right, bottom) in
  stride units; cell i sits at (i % W, i // W), its centre at (cell + 0.5) * stride.
- Ultralytics YOLOv8/v11: [B, 4+C, N] with cx, cy, w, h then per-class scores.
- End-to-end (YOLOv10/YOLO26, NMS-free): [B, N, 6] with x1, y1, x2, y2, score, class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_agent.geometry import iou_matrix

Decoded = tuple[np.ndarray, np.ndarray, np.ndarray]  # xyxy (N,4) f32, scores (N,) f32, class_ids (N,) i32


def empty() -> Decoded:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _best_class(scores: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per candidate: its best class and score; keep those above that class's threshold."""
    class_ids = scores.argmax(axis=1).astype(np.int32)
    best = scores[np.arange(len(scores)), class_ids]
    keep = best >= thresholds[class_ids]
    return keep, best, class_ids


def decode_nanodet(cls: Sequence[np.ndarray], box: Sequence[np.ndarray], strides: Sequence[int],
                   input_wh: tuple[int, int], reg_max: int, thresholds: np.ndarray) -> Decoded:
    """One image: `cls[k]` is (cells, C), `box[k]` is (cells, 4*(reg_max+1)) for `strides[k]`."""
    width, _ = input_wh
    parts = []
    bins = np.arange(reg_max + 1, dtype=np.float32)
    for scores, dist, stride in zip(cls, box, strides, strict=True):
        keep, best, class_ids = _best_class(scores, thresholds)
        if not keep.any():
            continue
        cells = np.nonzero(keep)[0]
        grid_w = int(np.ceil(width / stride))
        cx = (cells % grid_w + 0.5) * stride
        cy = (cells // grid_w + 0.5) * stride
        probs = _softmax(dist[cells].reshape(-1, 4, reg_max + 1))
        ltrb = (probs * bins).sum(axis=2) * stride
        xyxy = np.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]], axis=1)
        parts.append((xyxy.astype(np.float32), best[cells].astype(np.float32), class_ids[cells]))
    if not parts:
        return empty()
    xyxy, scores, class_ids = (np.concatenate(p) for p in zip(*parts, strict=True))
    return xyxy, scores, class_ids


def decode_yolo(output: np.ndarray, thresholds: np.ndarray) -> Decoded:
    """One image of an ultralytics v8/v11 head: `output` is (4+C, N)."""
    preds = output.T
    keep, best, class_ids = _best_class(preds[:, 4:], thresholds)
    preds = preds[keep]
    cx, cy, w, h = preds[:, 0], preds[:, 1], preds[:, 2], preds[:, 3]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    return xyxy, best[keep].astype(np.float32), class_ids[keep]


def decode_end2end(output: np.ndarray, thresholds: np.ndarray) -> Decoded:
    """One image of an NMS-free head: `output` is (N, 6) = x1, y1, x2, y2, score, class."""
    class_ids = output[:, 5].astype(np.int32)
    valid = (class_ids >= 0) & (class_ids < len(thresholds))
    keep = valid & (output[:, 4] >= thresholds[np.clip(class_ids, 0, len(thresholds) - 1)])
    return output[keep, :4].astype(np.float32), output[keep, 4].astype(np.float32), class_ids[keep]


# Candidates up to which the IoUs come as one matrix (4 MB): the decoder's hundred-odd candidates a frame
# cost one vectorised product instead of a row per kept box (a millisecond a frame, on the hot path).
_NMS_MATRIX_MAX = 1024


def nms(xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float,
        max_det: int = 300) -> np.ndarray:
    """Class-aware greedy NMS; returns kept indices, best score first.

    Boxes of different classes never suppress each other (offset trick: shift each class far apart).
    """
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    offset = class_ids[:, None].astype(np.float32) * (float(xyxy.max()) + 1.0)
    boxes = xyxy + offset
    order = np.argsort(-scores, kind="stable")
    matrix = iou_matrix(boxes, boxes) if len(order) <= _NMS_MATRIX_MAX else None
    suppressed = np.zeros(len(order), dtype=bool)
    keep: list[int] = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) == max_det:
            break
        ious = matrix[i] if matrix is not None else iou_matrix(boxes[i : i + 1], boxes)[0]
        suppressed |= ious > iou_threshold
    return np.asarray(keep, dtype=np.int64)
