"""PP-OCRv4 Chinese text detection and recognition on onnxruntime, sized for licence plates.

The model files come from the `rapidocr-onnxruntime` wheel (Apache-2.0), which ships them; we load
them with our own onnxruntime code (the wheel's Python pipeline is never imported: it pulls pyclipper
and shapely and does far more than a plate needs). The recogniser's character list is stored in the
model's metadata.

Detection is DB (differentiable binarisation): a per-pixel text probability map, thresholded into
regions whose rotated rectangles are grown by the unclip ratio. Recognition is CTC over 6,623
characters; `recognise` returns the per-timestep probabilities so the caller can decode them
restricted to the characters it expects (plates use 70 of them).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

WHEEL_PACKAGE = "rapidocr_onnxruntime"
DET_MODEL = "ch_PP-OCRv4_det_infer.onnx"
REC_MODEL = "ch_PP-OCRv4_rec_infer.onnx"


class ModelsMissing(RuntimeError):
    """The OCR model files are not installed."""


def model_dir() -> Path:
    """Where the wheel keeps its models, found without importing the wheel's code."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelsMissing(f"the plate reader needs the PP-OCRv4 models from the {WHEEL_PACKAGE.replace('_', '-')} "
                            "package: pip install 'cityeye[edge]'")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    for name in (DET_MODEL, REC_MODEL):
        if not (folder / name).is_file():
            raise ModelsMissing(f"{folder / name} is missing: reinstall {WHEEL_PACKAGE.replace('_', '-')}")
    return folder


def _session(path: Path, threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _normalise(image: np.ndarray) -> np.ndarray:
    """BGR uint8 HxWx3 -> 1x3xHxW float32 in [-1, 1], as both PP-OCR models were trained."""
    return ((image.astype(np.float32) / 127.5) - 1.0).transpose(2, 0, 1)[None]


@dataclass(frozen=True, slots=True)
class TextBox:
    """A detected text region: its 4 corners (clockwise from top-left, pixels) and mean probability."""

    corners: np.ndarray  # (4, 2) float32
    score: float

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        xs, ys = self.corners[:, 0], self.corners[:, 1]
        return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


class TextDetector:
    """DB text detection. `side` is the longer side images are scaled to (a multiple of 32)."""

    def __init__(self, path: Path, *, threads: int | None = None, side: int = 640, thresh: float = 0.3,
                 box_thresh: float = 0.5, unclip_ratio: float = 1.6) -> None:
        self.session = _session(path, threads)
        self.side, self.thresh, self.box_thresh, self.unclip_ratio = side, thresh, box_thresh, unclip_ratio

    def detect(self, image: np.ndarray) -> list[TextBox]:
        h, w = image.shape[:2]
        scale = self.side / max(h, w)
        nw, nh = (max(32, round(v * scale / 32) * 32) for v in (w, h))
        pred = self.session.run(None, {"x": _normalise(cv2.resize(image, (nw, nh)))})[0][0, 0]
        return self._boxes(pred, (w / nw, h / nh))

    def _boxes(self, pred: np.ndarray, to_image: tuple[float, float]) -> list[TextBox]:
        mask = cv2.dilate((pred > self.thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        out = []
        for contour in contours[:1000]:
            rect = cv2.minAreaRect(contour)
            if min(rect[1]) < 3:
                continue
            score = _mean_inside(pred, contour)
            if score < self.box_thresh:
                continue
            grown = self._unclip(rect)
            if min(grown[1]) < 5:
                continue
            corners = _order(cv2.boxPoints(grown)) * np.array(to_image, np.float32)
            out.append(TextBox(corners.astype(np.float32), score))
        return out

    def _unclip(self, rect: tuple) -> tuple:
        """Grow a rotated rectangle by the DB offset (area * ratio / perimeter on every side)."""
        (cx, cy), (rw, rh), angle = rect
        distance = rw * rh * self.unclip_ratio / max(2 * (rw + rh), 1e-6)
        return (cx, cy), (rw + 2 * distance, rh + 2 * distance), angle


def _mean_inside(pred: np.ndarray, contour: np.ndarray) -> float:
    x, y, w, h = cv2.boundingRect(contour)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [contour.reshape(-1, 2) - [x, y]], 1)
    return float(cv2.mean(pred[y:y + h, x:x + w], mask)[0])


def _order(points: np.ndarray) -> np.ndarray:
    """Corners clockwise from the top-left."""
    by_x = points[np.argsort(points[:, 0])]
    left = by_x[:2][np.argsort(by_x[:2, 1])]
    right = by_x[2:][np.argsort(by_x[2:, 1])]
    return np.array([left[0], right[0], right[1], left[1]], np.float32)


def rectify(image: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """The quadrilateral `corners` warped upright into its own rectangle."""
    tl, tr, br, bl = corners
    width = max(2, round(max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl))))
    height = max(2, round(max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr))))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    matrix = cv2.getPerspectiveTransform(corners.astype(np.float32), target)
    return cv2.warpPerspective(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE,
                               flags=cv2.INTER_CUBIC)


class TextRecogniser:
    """CTC recognition of one upright text line (height 48)."""

    HEIGHT = 48

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        self.session = _session(path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise ModelsMissing(f"{path} carries no character list in its metadata")
        # Output columns: 0 is the CTC blank, then the dictionary, then a space.
        self.characters: tuple[str, ...] = ("", *meta["character"].splitlines(), " ")

    def columns(self, alphabet: str) -> np.ndarray:
        """Output columns of the characters in `alphabet` (those the model knows)."""
        index = {c: i for i, c in enumerate(self.characters)}
        return np.array(sorted(index[c] for c in set(alphabet) if c in index), np.int64)

    def probabilities(self, line: np.ndarray) -> np.ndarray:
        """(T, C) per-timestep probabilities for a BGR text line."""
        h, w = line.shape[:2]
        width = max(self.HEIGHT, min(640, math.ceil(self.HEIGHT * w / max(h, 1))))
        resized = cv2.resize(line, (width, self.HEIGHT), interpolation=cv2.INTER_CUBIC)
        padded = np.zeros((self.HEIGHT, max(width, 320), 3), np.uint8)
        padded[:, :width] = resized
        return self.session.run(None, {"x": _normalise(padded)})[0][0]


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    char_scores: tuple[float, ...]  # per character: the best probability among its timesteps

    @property
    def score(self) -> float:
        return min(self.char_scores) if self.char_scores else 0.0


def ctc_decode(probs: np.ndarray, characters: tuple[str, ...], allowed: np.ndarray | None = None) -> Decoded:
    """Greedy CTC decoding; with `allowed`, only the blank and those columns compete at each step, so a
    plate's 0 is never read as O. A step whose winner is far below the unrestricted best is taken as
    the blank (whatever is there is not a plate character)."""
    if allowed is not None:
        columns = np.concatenate([[0], allowed])
        sub = probs[:, columns]
        best = sub.argmax(axis=1)
        winners, scores = columns[best], sub[np.arange(len(sub)), best]
        foreign = scores < 0.05 * probs.max(axis=1)
        winners[foreign] = 0
    else:
        winners = probs.argmax(axis=1)
        scores = probs[np.arange(len(probs)), winners]
    text, char_scores, previous = [], [], 0
    for column, score in zip(winners, scores, strict=True):
        if column != 0 and column != previous:
            text.append(characters[column])
            char_scores.append(float(score))
        elif column != 0 and column == previous and char_scores:
            char_scores[-1] = max(char_scores[-1], float(score))
        previous = column
    return Decoded("".join(text), tuple(char_scores))


class PlateOcr:
    """Both models, loaded once (about 15 MB)."""

    def __init__(self, folder: Path | None = None, *, threads: int | None = None, det_side: int = 736) -> None:
        folder = folder or model_dir()
        self.det_path = folder / DET_MODEL
        self.detector = TextDetector(self.det_path, threads=threads, side=det_side)
        self.recogniser = TextRecogniser(folder / REC_MODEL, threads=threads)
