"""The detector runtime: onnxruntime + a model manifest -> Detections for a batch of frames."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from edge_agent import decoders
from edge_agent.native_input import native_size, spatially_dynamic
from edge_agent.types import Detections
from models.cache import DEFAULT_MODEL, resolve
from models.manifest import ModelManifest


def detector_layout(sessions: int | None, threads: int | None, cores: int | None = None) -> tuple[int, int | None]:
    """(sessions, intra-op threads per session; None: all cores) from a camera config's
    `detector_sessions` and `detector_threads`: by default one single-threaded session per core, which
    bench/edge.py measures faster than one session on all cores; an explicit thread count alone keeps
    one session."""
    cores = cores or os.cpu_count() or 1
    if sessions is None:
        if threads is not None or cores < 2:
            return 1, threads
        sessions = cores
    return sessions, threads or (1 if sessions > 1 else None)


@dataclass(frozen=True, slots=True)
class _Transform:
    """How an image was fitted into the model input: input = frame * scale + pad."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    frame_wh: tuple[int, int]

    def to_frame(self, xyxy: np.ndarray) -> np.ndarray:
        out = xyxy.copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale_y
        w, h = self.frame_wh
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, w)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, h)
        return out


class Detector:
    """Runs one ONNX detector. Thread-safe for `detect` (onnxruntime sessions are).

    `sessions` > 1 loads the model that many times, each session with `threads` intra-op threads
    (default 1), and runs a batch's parts on them in parallel: on a few cores, single-threaded
    sessions side by side keep every core busy where one session's threads wait on each other
    (bench/edge.py measures both). Idle intra-op threads never spin: the decoders need those cores.
    """

    def __init__(self, manifest: ModelManifest, onnx_path: Path, *, threads: int | None = None,
                 score_threshold: float | None = None, class_thresholds: Mapping[str, float] | None = None,
                 sessions: int = 1, native_input: bool = False, floor: float | None = None):
        if sessions < 1:
            raise ValueError(f"sessions must be >= 1, got {sessions}")
        self.manifest = manifest
        # nanodet priors follow the input size, so its graph may run at the frame's own aspect
        self._graph = spatially_dynamic(onnx_path) if native_input and manifest.decoder.type == "nanodet" else None
        self.native_input = self._graph is not None
        options = ort.SessionOptions()
        threads = threads or (1 if sessions > 1 else None)
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = [self._open_session(onnx_path, options) for _ in range(sessions)]
        self.session = self.sessions[0]
        self._pool = ThreadPoolExecutor(sessions, thread_name_prefix="detect") if sessions > 1 else None
        model_input = self.session.get_inputs()[0]
        self.input_name = manifest.input.name or model_input.name
        batch_dim = model_input.shape[0]
        self.max_batch = manifest.max_batch if not isinstance(batch_dim, int) else max(1, batch_dim)
        # `operating`: the score each class must reach to count; `thresholds`: what decoding keeps. A
        # `floor` below the operating scores keeps weak boxes too, for the tracker's second stage
        # (ByteTrack): they extend tracks already there but never start one (see ByteTracker).
        self.operating = self._thresholds(score_threshold, class_thresholds or {})
        self.thresholds = self.operating if floor is None else np.minimum(self.operating, np.float32(floor))
        self.last_inference_ms = 0.0

    def _open_session(self, onnx_path: Path, options: ort.SessionOptions) -> ort.InferenceSession:
        model = self._graph if self._graph is not None else str(onnx_path)
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    @classmethod
    def load(cls, model: str | Path = DEFAULT_MODEL, *, threads: int | None = None,
             score_threshold: float | None = None, class_thresholds: Mapping[str, float] | None = None,
             cache_dir: Path | None = None, sessions: int = 1, native_input: bool = False,
             floor: float | None = None) -> Detector:
        """A cached model by name (see `cityeye models pull`) or an .onnx path. `native_input`: a NanoDet
        graph runs at each frame's own aspect (fitted into the exported size, sides multiples of 32).
        `floor`: also return boxes scoring from here up to the operating thresholds (`operating`)."""
        resolved = resolve(model, cache_dir)
        return cls(resolved.manifest, resolved.onnx_path, threads=threads, score_threshold=score_threshold,
                   class_thresholds=class_thresholds, sessions=sessions, native_input=native_input, floor=floor)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.manifest.labels)

    def _thresholds(self, default: float | None, overrides: Mapping[str, float]) -> np.ndarray:
        labels = self.manifest.labels
        unknown = sorted(set(overrides) - set(labels))
        if unknown:
            raise ValueError(f"class_thresholds: model {self.manifest.name} has no labels {unknown}")
        base = self.manifest.score_threshold if default is None else default
        per_class = {**self.manifest.class_thresholds, **overrides}
        return np.array([per_class.get(label, base) for label in labels], dtype=np.float32)

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, _Transform]:
        """The model input for one HxWx3 uint8 BGR image: a (3, H, W) float32 tensor (fitted, colour-ordered,
        scaled and normalised as the manifest says), and how its boxes map back to the image. Whatever feeds
        this model (calibration included) prepares frames here."""
        spec = self.manifest.input
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 BGR image, got shape {image.shape} dtype {image.dtype}")
        h, w = image.shape[:2]
        if self.native_input:
            iw, ih = native_size((w, h), (spec.width, spec.height), max(self.manifest.decoder.strides))
            fitted = image if (iw, ih) == (w, h) else cv2.resize(image, (iw, ih), interpolation=cv2.INTER_LINEAR)
            transform = _Transform(iw / w, ih / h, 0.0, 0.0, (w, h))
        elif spec.resize == "stretch":
            fitted = cv2.resize(image, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
            transform = _Transform(spec.width / w, spec.height / h, 0.0, 0.0, (w, h))
        else:
            scale = min(spec.width / w, spec.height / h)
            nw, nh = round(w * scale), round(h * scale)
            pad_x, pad_y = (spec.width - nw) // 2, (spec.height - nh) // 2
            fitted = np.full((spec.height, spec.width, 3), spec.pad_value, np.uint8)
            fitted[pad_y:pad_y + nh, pad_x:pad_x + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
            transform = _Transform(scale, scale, float(pad_x), float(pad_y), (w, h))
        if spec.color == "rgb":
            fitted = cv2.cvtColor(fitted, cv2.COLOR_BGR2RGB)
        tensor: np.ndarray = fitted.astype(np.float32) * spec.scale
        if spec.mean != (0.0, 0.0, 0.0) or spec.std != (1.0, 1.0, 1.0):
            tensor = (tensor - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
        return tensor.transpose(2, 0, 1), transform

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detect objects in BGR uint8 frames; batches of up to `max_batch` run in one call. With several
        sessions each takes an equal share (sizes differ by one at most), so none waits on another."""
        n = min(len(self.sessions), len(images))
        if self._pool is None or n < 2:
            return self._detect_share(images, self.session)
        base, extra = divmod(len(images), n)
        bounds = [k * base + min(k, extra) for k in range(n + 1)]
        shares = self._pool.map(lambda k: self._detect_share(images[bounds[k]:bounds[k + 1]], self.sessions[k]),
                                range(n))
        return [d for share in shares for d in share]

    def _detect_share(self, images: Sequence[np.ndarray], session: ort.InferenceSession) -> list[Detections]:
        batch = self.max_batch
        return [d for i in range(0, len(images), batch) for d in self._detect_batch(images[i:i + batch], session)]

    def _detect_batch(self, images: Sequence[np.ndarray], session: ort.InferenceSession) -> list[Detections]:
        prepared = [self.prepare(image) for image in images]
        results: list[Detections | None] = [None] * len(prepared)
        started = time.perf_counter()
        for shape in dict.fromkeys(p[0].shape for p in prepared):  # one run per input size (native sizes differ)
            members = [i for i, p in enumerate(prepared) if p[0].shape == shape]
            outputs = self._infer(np.stack([prepared[i][0] for i in members]), session)
            for j, i in enumerate(members):
                results[i] = self._decode_one(outputs, j, prepared[i][1], (shape[2], shape[1]))
        self.last_inference_ms = (time.perf_counter() - started) * 1000
        return [r for r in results if r is not None]

    def _infer(self, batch: np.ndarray, session: ort.InferenceSession | None = None) -> list[np.ndarray]:
        """The model's outputs for a prepared (B, 3, H, W) batch, on `session` (default: the first)."""
        return (session or self.session).run(None, {self.input_name: batch})

    def _decode_one(self, outputs: list[np.ndarray], index: int, transform: _Transform,
                    input_wh: tuple[int, int] | None = None) -> Detections:
        spec = self.manifest
        if spec.decoder.type == "nanodet":
            wh = input_wh or (spec.input.width, spec.input.height)
            xyxy, scores, class_ids = self._decode_nanodet([o[index] for o in outputs], wh)
        elif spec.decoder.type == "yolo":
            xyxy, scores, class_ids = decoders.decode_yolo(outputs[0][index], self.thresholds)
        else:
            xyxy, scores, class_ids = decoders.decode_end2end(outputs[0][index], self.thresholds)
        if spec.decoder.type != "yolo_end2end":
            keep = decoders.nms(xyxy, scores, class_ids, spec.nms_iou)
            xyxy, scores, class_ids = xyxy[keep], scores[keep], class_ids[keep]
        return Detections(transform.to_frame(xyxy), scores, class_ids, labels=self.labels)

    def _decode_nanodet(self, outputs: list[np.ndarray], input_wh: tuple[int, int]) -> decoders.Decoded:
        """Pair each stride's class and box tensors by their cell count and channel width."""
        spec = self.manifest
        width, height = input_wh
        n_cls, n_box = len(spec.labels), 4 * (spec.decoder.reg_max + 1)
        by_shape = {(o.shape[0], o.shape[1]): o for o in outputs}
        cls, box = [], []
        for stride in spec.decoder.strides:
            cells = -(-width // stride) * -(-height // stride)
            if (cells, n_cls) not in by_shape or (cells, n_box) not in by_shape:
                shapes = sorted(by_shape)
                raise ValueError(f"model {spec.name}: no outputs for stride {stride} "
                                 f"(want ({cells}, {n_cls}) and ({cells}, {n_box}); have {shapes})")
            cls.append(by_shape[(cells, n_cls)])
            box.append(by_shape[(cells, n_box)])
        return decoders.decode_nanodet(cls, box, spec.decoder.strides, input_wh, spec.decoder.reg_max,
                                       self.thresholds)
