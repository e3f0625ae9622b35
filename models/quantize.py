"""Derive an int8 copy of a detector, calibrated on a site's own camera frames, and cache it once it agrees
with the float model.

Static quantisation (onnxruntime, QDQ format): Conv weights become int8 per output channel and Conv
activations uint8, with ranges measured by running the float model on calibration frames prepared exactly
as the detector prepares them (`Detector.prepare`). Only Convs are quantised, and not the detection heads
(the last Conv on each path to a graph output and everything after it): int8 Add/Concat/Resize or int8
heads drop most detections. On a CPU with int8 dot-product instructions (x86 VNNI, ARM dot-product) the
Convs run about twice as fast; elsewhere the gain is smaller, which the parity check's timing shows.

The sampled frames are split interleaved: even ones calibrate, odd ones are held out for the parity check
(models/parity.py), so the check never sees a frame the ranges were measured on. The entry is built in a
hidden staging folder of the cache and moved into place only after the check passes: a refused or failed
run leaves nothing in the cache.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from models.cache import ResolvedModel, cache_root, cached, model_dir
from models.export import install_packaged
from models.manifest import Calibration, Derivation, ModelManifest, load_manifest
from models.parity import MIN_JUDGED, ParityReport, check_parity

# Calibration methods. On vtest.avi (384x288 sub-stream) MinMax and Percentile (99.999) agreed with the float
# model equally well (within a few detections per class) and MinMax calibrates in 2/5 of the time. Entropy
# comes out byte-identical to MinMax: quantize_static leaves onnxruntime's entropy search 128 histogram bins
# for 128 quantised ones (it passes no bin count through), so its only candidate range is the full one.
METHODS = ("minmax", "percentile", "entropy")
DEFAULT_METHOD = "minmax"
# On vtest.avi (64 calibration + 64 held-out frames, 384x288) the int8 model found the same objects as the
# float one at IoU 0.5 for 0.97 of persons, 0.92 of trucks and 0.86 of cars (matched over the larger of the
# two counts); with 32 + 32 frames 0.91 of trucks. 0.8 passes that with room for scenes busier or quieter
# than the calibration, and refuses what a broken quantisation gives (well under 0.5; zero detections when
# the Adds and Concats are quantised too).
DEFAULT_MIN_AGREEMENT = 0.8
DEFAULT_FRAMES = 128  # sampled: 64 calibrate, 64 check (on vtest enough cars and trucks to judge those classes)
# The stem (the first convolutions, which see raw pixels) stays float: on vtest.avi's 384x288 sub-stream
# this kept 115 of the float model's 117 trucks (108 with an int8 stem) at the same speed, and the edge
# bench's parking openings became the float model's (the car at the right edge scores near the
# threshold: an int8 stem opened its case 46 s late).
FLOAT_STEM_CONVS = 3
# One frame per run: int8 inference per frame on one thread costs 17 ms at batch 1 and 20-21 ms at batch 8
# on the box of bench/RESULTS.md (float: 33 and 34 ms), so the copy's manifest asks for no batching.
INT8_MAX_BATCH = 1


class QuantizeError(ValueError):
    """The request cannot be carried out (bad name, too few frames, a model that is already int8...)."""


class Refused(RuntimeError):
    """The int8 model disagrees with the float one on a class: it was not installed."""

    def __init__(self, report: ParityReport, failing: list[str]):
        self.report = report
        self.failing = failing
        super().__init__(f"int8 model refused: agreement below the minimum on {', '.join(failing)}")


@dataclass(frozen=True)
class Quantized:
    model: ResolvedModel  # the installed entry
    report: ParityReport
    calibration_frames: int
    forced: bool  # installed although the check failed


def split_frames(frames: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(calibration, held out): interleaved, so both halves cover every source and all of its time."""
    return list(frames[0::2]), list(frames[1::2])


def head_nodes(graph: Any) -> list[str]:
    """Names of the detection heads in an onnx GraphProto whose nodes all have names: the last Conv on each
    path to a graph output, and every node after it (splits, sigmoids, reshapes)."""
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    heads, seen = [], set()
    stack = [producers[o.name] for o in graph.output if o.name in producers]
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type == "Conv":
            heads.append(node)
        elif node.op_type != "Shape":  # a Shape reads only its input's dims: no value path runs through it
            stack.extend(producers[name] for name in node.input if name in producers)
    after: set[str] = set()
    while heads:
        node = heads.pop()
        if node.name not in after:
            after.add(node.name)
            heads.extend(c for out in node.output for c in consumers[out])
    return [node.name for node in graph.node if node.name in after]


def stem_nodes(graph: Any, count: int) -> list[str]:
    """The first `count` Conv nodes in graph order (ONNX graphs are topologically sorted): the stem."""
    return [node.name for node in graph.node if node.op_type == "Conv"][:count]


def _name_nodes(graph: Any) -> None:
    """Give every unnamed node a unique name (TF.js conversions leave them empty): `nodes_to_exclude`
    matches by name and silently ignores what it cannot find."""
    taken = {node.name for node in graph.node if node.name}
    for i, node in enumerate(graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over prepared (3, H, W) tensors, one per run."""

    def __init__(self, input_name: str, tensors: Sequence[np.ndarray]):
        self._feeds: Iterator[np.ndarray] = iter(tensors)
        self._input = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        tensor = next(self._feeds, None)
        return None if tensor is None else {self._input: tensor[None]}


def quantize_onnx(source: Path, inputs: Sequence[np.ndarray], input_name: str, out: Path,
                  method: str = DEFAULT_METHOD) -> list[str]:
    """Write the int8 (QDQ) copy of `source` to `out`, ranges measured on `inputs` (prepared (3, H, W)
    float32 tensors); returns the names of the nodes left in float (the stem and the detection heads)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise QuantizeError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[method]
    with tempfile.TemporaryDirectory(prefix="cityeye-quantize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # symbolic shape inference needs sympy, which CityEye does not install; ONNX's own inference does
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        _name_nodes(model.graph)
        excluded = stem_nodes(model.graph, FLOAT_STEM_CONVS) + head_nodes(model.graph)
        onnx.save(model, str(prepared))
        quantize_static(str(prepared), str(out), _Reader(input_name, inputs),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"], nodes_to_exclude=excluded,
                        calibrate_method=calibrate, extra_options={"ActivationSymmetric": False})
    return excluded


def tensors_sha256(tensors: Sequence[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(np.ascontiguousarray(tensor, np.float32).tobytes())
    return digest.hexdigest()


def _derived_manifest(source: ModelManifest, name: str, calibration: Calibration) -> ModelManifest:
    base = source.sha256
    if base is None:
        raise QuantizeError(f"model {source.name} has no sha256 to record as the source of its int8 copy")
    data = source.model_dump(exclude={"sha256", "source", "derived"})
    data.update(name=name, max_batch=min(INT8_MAX_BATCH, source.max_batch),
                description=f"int8 copy of {source.name}, calibrated on {calibration.frames} frames "
                f"({calibration.method}); {source.description}".rstrip("; "),
                derived=Derivation(from_model=source.name, from_sha256=base, method="int8-static-qdq",
                                   calibration=calibration).model_dump())
    try:
        return ModelManifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise QuantizeError(f"cannot name the int8 model {name!r}: {problems}") from exc


def _check_target(source: ResolvedModel, name: str, root: Path) -> None:
    if source.manifest.derived is not None:
        raise QuantizeError(f"model {source.manifest.name} is already an int8 copy of "
                            f"{source.manifest.derived.from_model}: quantize that one")
    if name == source.manifest.name:
        raise QuantizeError(f"the int8 copy cannot replace {name} itself: give it another --name")
    existing = model_dir(name, root) / "manifest.yaml"
    if existing.is_file() and load_manifest(existing).derived is None:
        raise QuantizeError(f"{model_dir(name, root)} holds a model that was not made by quantize: "
                            "give the int8 copy another --name")


def _install(entry: Path, target: Path, staging: Path) -> None:
    """Move a complete entry to `target`; a previous int8 copy there is replaced (moved aside first)."""
    if target.exists():
        target.replace(staging / "replaced")
    entry.replace(target)


def vehicle_groups() -> list[list[str]]:
    """The labels the edge tracker takes for one object (car, truck, bus): compared as one class."""
    from edge_agent.track import TrackerConfig

    return TrackerConfig().class_groups


def quantize(source: ResolvedModel, frames: Sequence[np.ndarray], *, name: str | None = None,
             root: Path | None = None, method: str = DEFAULT_METHOD, min_agreement: float = DEFAULT_MIN_AGREEMENT,
             force: bool = False, on_progress: Callable[[str], object] = lambda line: None) -> Quantized:
    """Quantise `source` on half of `frames` (HxWx3 uint8 BGR, as the camera's detector sees them), check it
    on the other half, and cache it as `name` (default `<model>-int8`) under `root` (default the cache).

    Raises Refused (nothing installed) when a class with at least MIN_JUDGED float detections agrees less
    than `min_agreement`, unless `force`; QuantizeError for a request that cannot be carried out.
    """
    from edge_agent.detect import Detector

    name = name or f"{source.manifest.name}-int8"
    root = root or cache_root()
    _check_target(source, name, root)
    calibration, held_out = split_frames(frames)
    if len(held_out) < 2:
        raise QuantizeError(f"{len(frames)} frame(s): need at least 4 (half calibrate, half check)")
    if method not in METHODS:
        raise QuantizeError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    reference = Detector(source.manifest, source.onnx_path, threads=1)
    inputs = [reference.prepare(frame)[0] for frame in calibration]
    calibrated = Calibration.model_validate({"frames": len(inputs), "method": method, "sha256": tensors_sha256(inputs)})
    manifest = _derived_manifest(source.manifest, name, calibrated)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=root))
    try:
        on_progress(f"calibrating {source.manifest.name} ({method}) on {len(inputs)} frames")
        quantize_onnx(source.onnx_path, inputs, reference.input_name, staging / "int8.onnx", method)
        manifest = _keep_reachable_features(manifest, staging / "int8.onnx")
        entry = install_packaged(staging / "int8.onnx", manifest, staging / "entry")
        on_progress(f"checking int8 against float on {len(held_out)} held-out frames")
        candidate = Detector(entry.manifest, entry.onnx_path, threads=1)
        report = check_parity(reference, candidate, held_out, groups=vehicle_groups())
        failing = [c.label for c in report.failing(min_agreement)]
        if failing and not force:
            raise Refused(report, failing)
        _install(staging / "entry", model_dir(name, root), staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    installed = cached(name, root)
    if installed is None:  # the entry was complete and verified a moment ago
        raise QuantizeError(f"{model_dir(name, root)} does not verify after installing it")
    return Quantized(installed, report, len(inputs), forced=bool(failing))


def _keep_reachable_features(manifest: ModelManifest, onnx_path: Path) -> ModelManifest:
    """The feature taps few-shot heads read, if the quantised graph still computes those tensors."""
    if manifest.features is None:
        return manifest
    import onnx

    produced = {out for node in onnx.load(str(onnx_path), load_external_data=False).graph.node for out in node.output}
    if set(manifest.features.tensors) <= produced:
        return manifest
    return manifest.model_copy(update={"features": None})


__all__ = ["DEFAULT_FRAMES", "DEFAULT_METHOD", "DEFAULT_MIN_AGREEMENT", "METHODS", "MIN_JUDGED", "QuantizeError",
           "Quantized", "Refused", "head_nodes", "quantize", "quantize_onnx", "split_frames"]
