"""Where pulled models live and how a name or a path becomes a verified (manifest, ONNX) pair.

Layout: `<root>/<name>/manifest.yaml` + `<root>/<name>/model.onnx`; root is `$CITYEYE_MODEL_DIR`
or `~/.cache/cityeye/models`. The ONNX's sha256 is checked against the cached manifest on every
resolve, so a corrupt or half-written file is never run.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from models.manifest import (
    EMBEDDED_KEY,
    ManifestError,
    ModelManifest,
    load_manifest,
    manifest_from_text,
    manifest_from_ultralytics_metadata,
)

DEFAULT_MODEL = "coco-nanodet"


class ModelNotFoundError(LookupError):
    pass


def cache_root() -> Path:
    env = os.environ.get("CITYEYE_MODEL_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cityeye" / "models"


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class ResolvedModel:
    manifest: ModelManifest
    onnx_path: Path


def model_dir(name: str, root: Path | None = None) -> Path:
    return (root or cache_root()) / name


def cached(name: str, root: Path | None = None) -> ResolvedModel | None:
    """The verified cached model, or None when it is absent or does not match its hash."""
    folder = model_dir(name, root)
    manifest_path = folder / "manifest.yaml"
    if not manifest_path.is_file():
        return None
    manifest = load_manifest(manifest_path)
    onnx_path = folder / manifest.file
    if not onnx_path.is_file() or manifest.sha256 != sha256_file(onnx_path):
        return None
    return ResolvedModel(manifest, onnx_path)


def _from_onnx_file(path: Path) -> ResolvedModel:
    """A user's own ONNX: a manifest beside it (`<stem>.yaml`) wins, then one embedded in its metadata
    (`cityeye.manifest`, what `models.export` writes: the file alone is a complete release), else
    ultralytics metadata."""
    beside = path.with_suffix(".yaml")
    digest = sha256_file(path)
    if beside.is_file():
        manifest = load_manifest(beside)
    else:
        import onnx  # only needed for files without a manifest

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf's DecodeError and friends: the file is not an ONNX model
            raise ManifestError(f"{path} is not a readable ONNX model ({type(exc).__name__})") from exc
        metadata = {p.key: p.value for p in proto.metadata_props}
        if EMBEDDED_KEY in metadata:
            manifest = manifest_from_text(metadata[EMBEDDED_KEY], f"{path} metadata {EMBEDDED_KEY}")
        else:
            dims = [d.dim_value or d.dim_param for d in proto.graph.output[0].type.tensor_type.shape.dim]
            manifest = manifest_from_ultralytics_metadata(metadata, path.stem, dims, str(path))
    if manifest.sha256 and manifest.sha256 != digest:
        raise ManifestError(f"{path}: sha256 {digest} does not match its manifest ({manifest.sha256})")
    return ResolvedModel(manifest.model_copy(update={"sha256": digest}), path)


def resolve(model: str | Path, root: Path | None = None) -> ResolvedModel:
    """A model name in the cache, or a path to an .onnx file."""
    path = Path(model).expanduser()
    if path.suffix == ".onnx":
        if not path.is_file():
            raise ModelNotFoundError(f"model file {path} does not exist")
        return _from_onnx_file(path)
    found = cached(str(model), root)
    if found is None:
        raise ModelNotFoundError(
            f"model {model!r} is not in the cache at {model_dir(str(model), root)} (or fails its sha256 "
            f"check): run `cityeye models pull {model}`"
        )
    return found
