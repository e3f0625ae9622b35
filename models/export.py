"""Export a user's ultralytics model (.pt) to ONNX and add it to the model cache; package an ONNX
as a self-contained release file.

Exporting needs the `[train]` extra (ultralytics + PyTorch). The ONNX carries ultralytics' metadata
(`names`, `imgsz`, `stride`), from which the manifest is derived, so no manifest is written by hand;
`package_onnx` then embeds that manifest (labels, input size and layout, decoder, thresholds) in the
ONNX's metadata, so the one file the hub registers and pushes is all the edge needs to load it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from models.cache import ResolvedModel, model_dir, resolve, sha256_file
from models.manifest import EMBEDDED_KEY, ManifestError, ModelManifest, save_manifest


def export_ultralytics(
    weights: Path, *, imgsz: int = 640, name: str | None = None, root: Path | None = None
) -> ResolvedModel:
    from models.train import TrainError, import_ultralytics

    try:
        YOLO = import_ultralytics()
    except TrainError as exc:
        raise ManifestError("exporting needs ultralytics: pip install 'cityeye[train]'") from exc
    if not weights.is_file():
        raise ManifestError(f"weights file {weights} does not exist")
    # dynamic: the batch axis stays free so the agent can batch frames from several cameras; no onnxslim
    # (an extra ultralytics would otherwise try to pip-install at export time)
    exported = Path(YOLO(str(weights)).export(format="onnx", imgsz=imgsz, dynamic=True, simplify=False))
    resolved = resolve(exported)
    name = name or resolved.manifest.name
    manifest = resolved.manifest.model_copy(update={"name": name, "source": None})
    return install_packaged(exported, manifest, model_dir(name, root))


def install_packaged(onnx_path: Path, manifest: ModelManifest, folder: Path) -> ResolvedModel:
    """Write a cache entry: `folder/model.onnx` (packaged: `manifest` embedded) and `folder/manifest.yaml`
    with the written file's sha256, the layout `models.cache.cached` resolves."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = manifest.model_copy(update={"file": "model.onnx"})
    package_onnx(onnx_path, manifest, folder / "model.onnx")
    manifest = manifest.model_copy(update={"sha256": sha256_file(folder / "model.onnx")})
    save_manifest(manifest, folder / "manifest.yaml")
    return ResolvedModel(manifest, folder / "model.onnx")


def package_onnx(onnx_path: Path, manifest: ModelManifest, out: Path) -> Path:
    """Write `onnx_path` to `out` with `manifest` (less its sha256, which the file can't hold of itself)
    in the metadata key `cityeye.manifest`: a release file the edge loads with nothing beside it."""
    import onnx

    proto = onnx.load(str(onnx_path), load_external_data=False)
    text = yaml.safe_dump(manifest.model_dump(mode="json", exclude_none=True, exclude={"sha256", "source"}),
                          sort_keys=False, allow_unicode=True)
    kept = [p for p in proto.metadata_props if p.key != EMBEDDED_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key, entry.value = EMBEDDED_KEY, text
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    onnx.save(proto, str(tmp))
    shutil.move(tmp, out)
    return out
