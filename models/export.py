"""Export a user's ultralytics model (.pt) to ONNX and add it to the model cache.

Needs the `[train]` extra (ultralytics + PyTorch). The ONNX carries ultralytics' metadata
(`names`, `imgsz`, `stride`), from which the manifest is derived, so no manifest is written by hand.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from models.cache import ResolvedModel, model_dir, resolve
from models.manifest import ManifestError, save_manifest


def export_ultralytics(
    weights: Path, *, imgsz: int = 640, name: str | None = None, root: Path | None = None
) -> ResolvedModel:
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise ManifestError("exporting needs ultralytics: pip install 'cityeye[train]'") from exc
    if not weights.is_file():
        raise ManifestError(f"weights file {weights} does not exist")
    # dynamic: the batch axis stays free so the agent can batch frames from several cameras
    exported = Path(YOLO(str(weights)).export(format="onnx", imgsz=imgsz, dynamic=True))
    resolved = resolve(exported)
    name = name or resolved.manifest.name
    folder = model_dir(name, root)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(exported, folder / "model.onnx")
    manifest = resolved.manifest.model_copy(update={"name": name, "file": "model.onnx"})
    save_manifest(manifest, folder / "manifest.yaml")
    return ResolvedModel(manifest, folder / "model.onnx")
