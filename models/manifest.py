"""Model manifests: what a detector expects as input, how to decode it, where it came from.

A manifest in this package (`models/<name>.yaml`) says how to obtain and convert a model; the
cached copy beside the ONNX file adds the ONNX's sha256, which is checked before every load.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MANIFEST_DIR = Path(__file__).resolve().parent


class ManifestError(ValueError):
    """A manifest is missing, unreadable or invalid; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(_Strict):
    name: str | None = Field(default=None, description="input tensor name; the first input if unset")
    width: int = Field(gt=0, le=4096)
    height: int = Field(gt=0, le=4096)
    color: Literal["rgb", "bgr"] = "rgb"
    scale: float = Field(default=1 / 255, gt=0, description="pixel values are multiplied by this")
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize: Literal["stretch", "letterbox"] = "stretch"
    pad_value: int = Field(default=114, ge=0, le=255, description="letterbox border grey level")


class DecoderSpec(_Strict):
    type: Literal["nanodet", "yolo", "yolo_end2end"]
    strides: list[int] = Field(default_factory=list, description="nanodet: one per output level")
    reg_max: int = Field(default=7, ge=1, description="nanodet: distance bins per side minus one")


class FeatureTaps(_Strict):
    """Inner tensors of the graph exposed as features (NCHW), finest stride first, for few-shot heads."""

    tensors: list[str] = Field(min_length=1, description="graph tensor names, one per stride")
    strides: list[int] = Field(min_length=1, description="input pixels per feature cell, one per tensor")

    @model_validator(mode="after")
    def _paired(self) -> FeatureTaps:
        if len(self.tensors) != len(self.strides):
            raise ValueError(f"{len(self.tensors)} tensors but {len(self.strides)} strides: one stride per tensor")
        return self


class NpmSource(_Strict):
    kind: Literal["npm"] = "npm"
    package: str
    version: str
    registry: str = "https://registry.npmjs.org"
    integrity: str = Field(pattern=r"^sha512-[A-Za-z0-9+/=]+$", description="the registry's dist.integrity")
    graph: str = Field(description="path of the TF.js model.json inside the tarball")
    members: list[str] = Field(min_length=1, description="tarball members to extract")


class FileSource(_Strict):
    kind: Literal["file"] = "file"
    path: str


class Calibration(_Strict):
    """The frames a quantised model's activation ranges were measured on."""

    frames: int = Field(ge=1, description="how many frames")
    method: Literal["minmax", "percentile", "entropy"] = Field(description="how ranges were taken from them")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the prepared input tensors, in order")


class Derivation(_Strict):
    """Where a model derived from another one (`cityeye models quantize`) came from."""

    from_model: str = Field(description="name of the model it was derived from")
    from_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of that model's ONNX")
    method: Literal["int8-static-qdq"] = Field(description="int8 weights and activations, QDQ nodes around Convs")
    calibration: Calibration


class ModelManifest(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    description: str = ""
    license: str = ""
    labels: list[str] = Field(min_length=1)
    input: InputSpec
    decoder: DecoderSpec
    source: NpmSource | FileSource | None = None
    file: str = Field(default="model.onnx", description="ONNX file name beside the cached manifest")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="sha256 of the ONNX")
    score_threshold: float = Field(default=0.3, ge=0, le=1)
    class_thresholds: dict[str, float] = Field(default_factory=dict)
    nms_iou: float = Field(default=0.5, gt=0, le=1)
    max_batch: int = Field(default=8, ge=1, le=64)
    features: FeatureTaps | None = Field(default=None, description="backbone tensors few-shot heads read")
    derived: Derivation | None = Field(default=None, description="set when derived from another model")

    @model_validator(mode="after")
    def _check(self) -> ModelManifest:
        unknown = sorted(set(self.class_thresholds) - set(self.labels))
        if unknown:
            raise ValueError(f"class_thresholds names labels the model does not have: {unknown}")
        if self.decoder.type == "nanodet" and not self.decoder.strides:
            raise ValueError("decoder.strides is required for a nanodet decoder")
        return self


def _format_errors(path: Path | str, exc: ValidationError) -> str:
    lines = [f"invalid model manifest {path}:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


EMBEDDED_KEY = "cityeye.manifest"  # ONNX metadata_props key holding the manifest (YAML, without sha256)


def load_manifest(path: Path) -> ModelManifest:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ManifestError(f"cannot read model manifest {path}: {exc.strerror}") from exc
    return manifest_from_text(text, path)


def manifest_from_text(text: str, path: Path | str) -> ModelManifest:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"model manifest {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"model manifest {path} must be a mapping, got {type(data).__name__}")
    try:
        return ModelManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(_format_errors(path, exc)) from exc


def save_manifest(manifest: ModelManifest, path: Path) -> None:
    data = manifest.model_dump(mode="json", exclude_none=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def builtin_manifests() -> dict[str, Path]:
    """Manifests shipped with CityEye, by model name."""
    return {p.stem: p for p in sorted(MANIFEST_DIR.glob("*.yaml"))}


def _literal(value: str, key: str, source: str) -> Any:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError) as exc:
        raise ManifestError(f"{source}: metadata {key!r} is not a Python literal: {value[:80]!r}") from exc


def manifest_from_ultralytics_metadata(metadata: dict[str, str], name: str, output_shape: list,
                                       source: str) -> ModelManifest:
    """A manifest for an ONNX written by `yolo export format=onnx` from its embedded metadata.

    Ultralytics stores `names` ({0: 'person', ...}), `imgsz` ([640, 640]) and `stride`; an output of
    shape [B, N, 6] marks the NMS-free end-to-end head.
    """
    if "names" not in metadata:
        raise ManifestError(f"{source}: no manifest and no ultralytics 'names' metadata in the ONNX")
    names = _literal(metadata["names"], "names", source)
    labels = [str(names[i]) for i in sorted(names)] if isinstance(names, dict) else [str(n) for n in names]
    imgsz = _literal(metadata.get("imgsz", "[640, 640]"), "imgsz", source)
    height, width = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
    end2end = len(output_shape) == 3 and output_shape[-1] == 6 and metadata.get("end2end", "True") != "False"
    safe_name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in name.lower())[:64] or "model"
    return ModelManifest(
        name=safe_name,
        description=metadata.get("description", "ultralytics export"),
        license=metadata.get("license", ""),
        labels=labels,
        input=InputSpec(width=width, height=height, resize="letterbox"),
        decoder=DecoderSpec(type="yolo_end2end" if end2end else "yolo"),
        source=FileSource(path=source),
        score_threshold=0.25,
        nms_iou=0.7 if not end2end else 0.5,
    )
