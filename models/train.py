"""Train a detector on a CityEye dataset with ultralytics (the `[train]` extra), then export it.

Only this module and `models/export.py` touch ultralytics (AGPL) and PyTorch; the edge runs the
exported ONNX with onnxruntime. CPU works (slowly). A run interrupted at any point resumes from its
`last.pt` when the same command is given again; ultralytics prints progress per epoch and batch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from models.cache import ResolvedModel
from models.export import export_ultralytics

log = logging.getLogger(__name__)


class TrainError(RuntimeError):
    pass


def import_ultralytics() -> Any:
    """ultralytics' YOLO class, told never to reach the internet: no weight, font or dataset downloads
    and no pip auto-install of what an export needs (a bureau's box may have no way out; a missing
    piece must fail with its name, not hang)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise TrainError("training needs ultralytics: pip install 'cityeye[train]'") from exc
    return YOLO


def _finished(last: Path) -> bool:
    """Whether the run of this checkpoint ended (ultralytics marks a finished run's epoch -1)."""
    import torch

    checkpoint = torch.load(str(last), map_location="cpu", weights_only=False)
    return int(checkpoint.get("epoch", -1)) == -1


def train_detector(data: Path, *, base: str = "yolov8n.yaml", epochs: int = 50, imgsz: int = 640, name: str,
                   runs: Path = Path("runs"), device: str = "cpu", batch: int = 8,
                   root: Path | None = None) -> ResolvedModel:
    """Train (or resume) `runs/<name>`, export its best weights to ONNX and cache it as `name`."""
    YOLO = import_ultralytics()
    data_yaml = data / "data.yaml"
    if not data_yaml.is_file():
        raise TrainError(f"{data} is not a dataset: no data.yaml (write one with `cityeye models dataset`)")
    run_dir = runs.resolve() / name
    last = run_dir / "weights" / "last.pt"
    if last.is_file() and not _finished(last):
        log.info("resuming %s from %s", name, last)
        YOLO(str(last)).train(resume=True, workers=0, plots=False)
    elif last.is_file():
        log.info("%s finished all its epochs before: exporting its best weights", name)
    else:
        if base.endswith(".pt") and not Path(base).is_file():
            raise TrainError(f"starting weights {base} do not exist (no download at run time: pass a local .pt, "
                             "or an architecture .yaml to train from scratch)")
        YOLO(base).train(data=str(data_yaml), epochs=epochs, imgsz=imgsz, device=device, batch=batch,
                         project=str(runs.resolve()), name=name, exist_ok=True, workers=0, plots=False,
                         amp=False)
    best = run_dir / "weights" / "best.pt"
    if not best.is_file():
        raise TrainError(f"training ended without {best}")
    return export_ultralytics(best, imgsz=imgsz, name=name, root=root)
