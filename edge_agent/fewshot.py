"""Few-shot heads at run time: the detector's own features, read in the same inference, feed the
linear probes of `models/fewshot.py`.

- `FeatureDetector`: the detector with its manifest's feature tensors (`features.tensors`) added as
  graph outputs, so one run gives the detections and the features.
- `FewShotDetector`: a cells head on top; its labels are the detector's plus the head's, and its
  manifest (name, sha256 of the head file) is what events report as their model.
- `ZoneStateClassifier`: a state head on a zone's crop (an extra, small inference: run it at a low
  rate). It is a plain callable `(image, xyxy) -> {label: probability}` for other stages (for example
  a change detector that wants a second opinion on a region).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_agent.detect import Detector
from edge_agent.types import Detections
from models.cache import resolve, sha256_file
from models.fewshot import (
    Backbone,
    FewShotError,
    FewShotModel,
    boxes_from_map,
    cell_features,
    load_model,
    pooled_features,
)
from models.fewshot_train import Backend
from models.manifest import FeatureTaps, ModelManifest, builtin_manifests, load_manifest

Features = list[np.ndarray]  # one image's feature maps (C, H, W), finest stride first


def feature_taps(manifest: ModelManifest) -> FeatureTaps:
    """The manifest's feature tensors; for a model cached before manifests named them, the shipped
    manifest of the same name."""
    if manifest.features is not None:
        return manifest.features
    shipped = builtin_manifests().get(manifest.name)
    taps = load_manifest(shipped).features if shipped else None
    if taps is None:
        raise FewShotError(f"model {manifest.name} names no feature tensors (manifest field features): "
                           "few-shot heads need a detector that exposes its features")
    return taps


class FeatureDetector(Detector):
    """A Detector whose every run also returns its feature maps."""

    def __init__(self, manifest: ModelManifest, onnx_path: Path, *, threads: int | None = None,
                 score_threshold: float | None = None, class_thresholds: Mapping[str, float] | None = None):
        self.taps = feature_taps(manifest)
        self.head_outputs: list[str] = []
        # heads were trained on feature maps of the exported size: no native sizes here
        super().__init__(manifest, onnx_path, threads=threads, score_threshold=score_threshold,
                         class_thresholds=class_thresholds, native_input=False)

    def _open_session(self, onnx_path: Path, options: ort.SessionOptions) -> ort.InferenceSession:
        import onnx

        proto = onnx.load(str(onnx_path))
        self.head_outputs = [o.name for o in proto.graph.output]
        produced = {name for node in proto.graph.node for name in node.output}
        for tensor in self.taps.tensors:
            if tensor not in produced:
                raise FewShotError(f"model {self.manifest.name}: its graph has no tensor {tensor!r} "
                                   "(manifest features.tensors)")
            proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
        return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def _infer(self, batch: np.ndarray, session: ort.InferenceSession | None = None) -> list[np.ndarray]:
        return (session or self.session).run(self.head_outputs, {self.input_name: batch})

    def detect_with_features(self, images: Sequence[np.ndarray]) -> tuple[list[Detections], list[Features]]:
        """Detections and feature maps per image, from one inference per batch."""
        import time

        detections: list[Detections] = []
        features: list[Features] = []
        for start in range(0, len(images), self.max_batch):
            prepared = [self.prepare(image) for image in images[start:start + self.max_batch]]
            batch = np.stack([p[0] for p in prepared])
            started = time.perf_counter()
            outputs = self.session.run(self.head_outputs + list(self.taps.tensors), {self.input_name: batch})
            self.last_inference_ms = (time.perf_counter() - started) * 1000
            heads, maps = outputs[:len(self.head_outputs)], outputs[len(self.head_outputs):]
            for i, (_, transform) in enumerate(prepared):
                detections.append(self._decode_one(heads, i, transform))
                features.append([m[i] for m in maps])
        return detections, features

    def frame_box(self, image: np.ndarray, norm_xyxy: np.ndarray) -> np.ndarray:
        """Boxes normalised to the model input -> pixel boxes in `image` (undoing stretch or letterbox)."""
        _, transform = self.prepare(image)
        spec = self.manifest.input
        return transform.to_frame(norm_xyxy * np.array([spec.width, spec.height] * 2, np.float32))


def _checked_backbone(model: FewShotModel, cache_dir: Path | None, threads: int | None,
                      score_threshold: float | None = None) -> FeatureDetector:
    resolved = resolve(model.backbone.name, cache_dir)
    if resolved.manifest.sha256 != model.backbone.sha256:
        raise FewShotError(f"few-shot model {model.name} was trained on {model.backbone.name} sha256 "
                           f"{model.backbone.sha256[:12]}…, the cached one is {str(resolved.manifest.sha256)[:12]}…")
    detector = FeatureDetector(resolved.manifest, resolved.onnx_path, threads=threads, score_threshold=score_threshold)
    if tuple(detector.taps.tensors) != model.backbone.tensors:
        raise FewShotError(f"few-shot model {model.name} reads tensors {list(model.backbone.tensors)}, "
                           f"the detector exposes {detector.taps.tensors}")
    return detector


class FewShotDetector:
    """The detector plus a cells head: one inference, the detector's labels and the head's."""

    def __init__(self, base: FeatureDetector, model: FewShotModel, sha256: str):
        if model.kind != "cells":
            raise FewShotError(f"few-shot model {model.name} is a {model.kind} head; a detector needs a cells head")
        self.base = base
        self.model = model
        labels = list(base.labels)
        self._class_of: list[int] = []
        for head in model.heads:
            if head.label not in labels:
                labels.append(head.label)
            self._class_of.append(labels.index(head.label))
        self.max_batch = base.max_batch
        self.manifest = base.manifest.model_copy(update={"name": model.name, "labels": labels, "sha256": sha256})

    @classmethod
    def load(cls, path: str | Path, *, cache_dir: Path | None = None, threads: int | None = None
             ) -> FewShotDetector:
        path = Path(path)
        model = load_model(path)
        return cls(_checked_backbone(model, cache_dir, threads), model, sha256_file(path))

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.manifest.labels)

    @property
    def last_inference_ms(self) -> float:
        return self.base.last_inference_ms

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        detections, features = self.base.detect_with_features(images)
        return [self._with_heads(image, found, maps) for image, found, maps in zip(images, detections, features,
                                                                                      strict=True)]

    def _with_heads(self, image: np.ndarray, found: Detections, maps: Features) -> Detections:
        cells = cell_features(maps)
        xyxy, scores, class_ids = [found.xyxy], [found.confidence], [found.class_id]
        for head, class_id in zip(self.model.heads, self._class_of, strict=True):
            probability = head.probe.probability_map(cells)
            offsets = head.offsets.offset_map(cells) if head.offsets else None
            boxes, head_scores = boxes_from_map(probability, head.threshold, head.box_wh, offsets)
            xyxy.append(self.base.frame_box(image, boxes))
            scores.append(head_scores)
            class_ids.append(np.full(len(boxes), class_id, np.int32))
        return Detections(np.concatenate(xyxy), np.concatenate(scores), np.concatenate(class_ids),
                          labels=self.labels)


class ZoneStateClassifier:
    """`classifier(image, xyxy)` -> {label: probability} for the crop `xyxy` (pixels) of a BGR image."""

    def __init__(self, base: FeatureDetector, model: FewShotModel):
        if model.kind != "state":
            raise FewShotError(f"few-shot model {model.name} is a {model.kind} head; zone states need a state head")
        self.base = base
        self.model = model

    @classmethod
    def load(cls, path: str | Path, *, cache_dir: Path | None = None, threads: int | None = None
             ) -> ZoneStateClassifier:
        model = load_model(Path(path))
        return cls(_checked_backbone(model, cache_dir, threads), model)

    def embed(self, crop: np.ndarray) -> np.ndarray:
        return pooled_features(self.base.detect_with_features([crop])[1][0])

    def __call__(self, image: np.ndarray, xyxy: Sequence[float]) -> dict[str, float]:
        height, width = image.shape[:2]
        x1, y1, x2, y2 = (round(float(v)) for v in xyxy)
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if x2 - x1 < 8 or y2 - y1 < 8:
            raise ValueError(f"crop {list(xyxy)} is smaller than 8x8 pixels inside a {width}x{height} image")
        vector = self.embed(np.ascontiguousarray(image[y1:y2, x1:x2]))[None, :]
        return {h.label: float(h.probe.probability(vector)[0]) for h in self.model.heads}


def feature_backend(model: str | Path = "coco-nanodet", *, cache_dir: Path | None = None,
                    threads: int | None = None) -> Backend:
    """The network few-shot heads are trained on: a cached detector's features (see models/fewshot_train.py)."""
    resolved = resolve(model, cache_dir)
    detector = FeatureDetector(resolved.manifest, resolved.onnx_path, threads=threads)
    spec = resolved.manifest
    backbone = Backbone(spec.name, str(spec.sha256), tuple(detector.taps.tensors))
    return Backend(lambda images: detector.detect_with_features(images)[1], backbone,
                   (spec.input.width, spec.input.height))


def load_detector(model: str | Path, *, score_threshold: float | None = None, cache_dir: Path | None = None,
                  threads: int | None = None, sessions: int = 1, native_input: bool = False,
                  floor: float | None = None) -> tuple[Detector | FewShotDetector, np.ndarray]:
    """A detector from a cached name, an .onnx file or a few-shot head file (.json), and the score
    each of its labels must reach in service (the manifest's thresholds; a head's own threshold).
    `sessions`: detector sessions side by side (a few-shot head runs on one, with `threads` or all cores).
    `native_input`: a NanoDet runs at each frame's aspect (few-shot heads keep the exported size).
    `floor`: a plain detector also returns the weaker boxes down to it, for the tracker's second stage."""
    path = Path(model)
    if path.suffix == ".json":
        head = load_model(path)
        base = _checked_backbone(head, cache_dir, threads if sessions == 1 else None, score_threshold)
        detector: Detector | FewShotDetector = FewShotDetector(base, head, sha256_file(path))
        manifest = base.manifest
    else:
        detector = Detector.load(model, threads=threads, score_threshold=score_threshold, cache_dir=cache_dir,
                                 sessions=sessions, native_input=native_input, floor=floor)
        manifest = detector.manifest
    operating = [manifest.class_thresholds.get(label, manifest.score_threshold) for label in manifest.labels]
    if isinstance(detector, FewShotDetector):
        operating += [h.threshold for h in detector.model.heads if h.label not in manifest.labels]
    return detector, np.array(operating, np.float32)
