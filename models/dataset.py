"""Labelled frames -> a YOLO-format dataset split by camera and day, with a summary per class.

Input is a labels file (JSON lines, what the hub's label API exports and the frame sampler starts):

    {"image": "frames/cam1-000120.jpg", "camera_id": "cam1", "taken_at": "2026-12-07T08:00:12+08:00",
     "source": "review", "boxes": [{"label": "traffic_cone", "box": [0.05, 0.30, 0.06, 0.33]}]}

`box` is normalised xyxy; `image` is relative to the labels file. `source` says where the frame came
from: `review` (boxes drawn by a reviewer), `nothing` (a reviewer said nothing is there), `confirmed`
(a confirmed case: its boxes are positives), `voided` (a voided case: the detector's box was wrong, so
the frame is a hard negative for the labels in `negatives` and carries only the other boxes), `pseudo`
(a sampled frame the detector in service pre-labelled and a reviewer corrected: the student path,
hub.releases.sampled; `cityeye models dataset --no-pseudo` leaves these out).

The split keeps every frame of one camera on one day on the same side, so no scene is in both
(a model is judged on days it has not seen). With a single camera-day there is nothing to split
that way: the frames are then split by time, the last part of the day held out, and the summary says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml

Source = Literal["review", "nothing", "confirmed", "voided", "pseudo"]
SOURCES = ("review", "nothing", "confirmed", "voided", "pseudo")


class DatasetError(ValueError):
    """Bad labels input; the message names the file, line and field."""


@dataclass(frozen=True)
class LabelBox:
    label: str
    xyxy: tuple[float, float, float, float]  # normalised 0-1

    def yolo_line(self, class_id: int) -> str:
        x1, y1, x2, y2 = self.xyxy
        return f"{class_id} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}"


@dataclass(frozen=True)
class LabelledFrame:
    image: Path
    camera_id: str
    taken_at: datetime
    source: Source = "review"
    boxes: tuple[LabelBox, ...] = ()
    negatives: tuple[str, ...] = ()  # labels known absent (a voided case's label): hard negatives

    @property
    def group(self) -> tuple[str, str]:
        """The split unit: one camera on one (local) day."""
        return self.camera_id, self.taken_at.date().isoformat()


def _box(raw: object, where: str) -> LabelBox:
    if not isinstance(raw, dict) or not isinstance(raw.get("label"), str) or not raw["label"].strip():
        raise DatasetError(f"{where}: a box needs a non-empty 'label' and a 'box'")
    coords = raw.get("box")
    if not (isinstance(coords, list) and len(coords) == 4 and all(isinstance(v, int | float) for v in coords)):
        raise DatasetError(f"{where}: box must be [x1, y1, x2, y2] (normalised numbers), got {coords!r}")
    x1, y1, x2, y2 = (float(v) for v in coords)
    if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
        raise DatasetError(f"{where}: box {coords} must satisfy 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1")
    return LabelBox(raw["label"].strip(), (x1, y1, x2, y2))


def parse_frame(raw: object, base: Path, where: str) -> LabelledFrame:
    if not isinstance(raw, dict):
        raise DatasetError(f"{where}: expected an object, got {type(raw).__name__}")
    for key in ("image", "camera_id", "taken_at"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise DatasetError(f"{where}: field {key!r} is missing or not a string")
    try:
        taken_at = datetime.fromisoformat(raw["taken_at"])
    except ValueError as exc:
        raise DatasetError(f"{where}: taken_at {raw['taken_at']!r} is not an ISO 8601 time") from exc
    source = raw.get("source", "review")
    if source not in SOURCES:
        raise DatasetError(f"{where}: source must be one of {list(SOURCES)}, got {source!r}")
    boxes = tuple(_box(b, f"{where}: boxes[{i}]") for i, b in enumerate(raw.get("boxes") or []))
    if source == "nothing" and boxes:
        raise DatasetError(f"{where}: a 'nothing' frame cannot have boxes")
    negatives = raw.get("negatives") or []
    if not isinstance(negatives, list) or not all(isinstance(n, str) and n for n in negatives):
        raise DatasetError(f"{where}: negatives must be a list of labels, got {negatives!r}")
    image = (base / raw["image"]).resolve()
    if not image.is_file():
        raise DatasetError(f"{where}: image {image} does not exist")
    return LabelledFrame(image, raw["camera_id"], taken_at, source, boxes, tuple(negatives))


def read_labels(path: Path) -> list[LabelledFrame]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read labels {path}: {exc.strerror}") from exc
    frames = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{lineno}: not JSON ({exc.msg})") from exc
        frames.append(parse_frame(raw, path.parent, f"{path}:{lineno}"))
    if not frames:
        raise DatasetError(f"{path}: no labelled frames")
    return frames


def frame_record(frame: LabelledFrame, image: str) -> dict:
    return {"image": image, "camera_id": frame.camera_id, "taken_at": frame.taken_at.isoformat(),
            "source": frame.source, "boxes": [{"label": b.label, "box": list(b.xyxy)} for b in frame.boxes],
            "negatives": list(frame.negatives)}


# ---- the split -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Split:
    train: list[LabelledFrame]
    val: list[LabelledFrame]
    by: Literal["camera-day", "time"]


def _stable_rank(key: tuple[str, str], seed: int) -> str:
    return hashlib.sha256(f"{seed}:{key[0]}:{key[1]}".encode()).hexdigest()


def split_frames(frames: Sequence[LabelledFrame], val_fraction: float = 0.3, seed: int = 0) -> Split:
    """Hold out whole camera-days (about `val_fraction` of the frames); by time when there is one only."""
    if not 0 < val_fraction < 1:
        raise DatasetError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    groups: dict[tuple[str, str], list[LabelledFrame]] = {}
    for frame in frames:
        groups.setdefault(frame.group, []).append(frame)
    if len(groups) == 1:
        ordered = sorted(frames, key=lambda f: f.taken_at)
        cut = max(1, min(len(ordered) - 1, round(len(ordered) * (1 - val_fraction))))
        return Split(ordered[:cut], ordered[cut:], "time")
    val_keys: list[tuple[str, str]] = []
    held = 0
    for key in sorted(groups, key=lambda k: _stable_rank(k, seed)):
        if held < val_fraction * len(frames):
            val_keys.append(key)
            held += len(groups[key])
    if len(val_keys) == len(groups):  # every group went to val: the last one trains
        val_keys.pop()
    train = [f for key, fs in groups.items() if key not in val_keys for f in fs]
    val = [f for key in val_keys for f in groups[key]]
    return Split(train, val, "camera-day")


# ---- per-class summary -------------------------------------------------------------------------------

@dataclass
class ClassSummary:
    label: str
    boxes: Counter = field(default_factory=Counter)  # split -> boxes
    images: Counter = field(default_factory=Counter)  # split -> images holding the label
    hard_negatives: Counter = field(default_factory=Counter)  # split -> voided frames of this label


def summarise(split: Split) -> list[ClassSummary]:
    summary: dict[str, ClassSummary] = {}
    for part, frames in (("train", split.train), ("val", split.val)):
        for frame in frames:
            for label in {b.label for b in frame.boxes}:
                summary.setdefault(label, ClassSummary(label)).images[part] += 1
            for box in frame.boxes:
                summary[box.label].boxes[part] += 1
            for label in frame.negatives:
                summary.setdefault(label, ClassSummary(label)).hard_negatives[part] += 1
    return [summary[k] for k in sorted(summary)]


def format_summary(split: Split, classes: Iterable[ClassSummary]) -> list[str]:
    negatives = {p: sum(1 for f in fs if not f.boxes) for p, fs in (("train", split.train), ("val", split.val))}
    lines = [f"split by {split.by}: {len(split.train)} train frames, {len(split.val)} val frames "
             f"({negatives['train']} / {negatives['val']} without any box)"]
    pseudo = {p: sum(1 for f in fs if f.source == "pseudo") for p, fs in (("train", split.train), ("val", split.val))}
    if pseudo["train"] or pseudo["val"]:
        lines.append(f"  pseudo-labelled (the detector's boxes, corrected by a reviewer): {pseudo['train']} train / "
                     f"{pseudo['val']} val frames")
    if split.by == "time":
        lines.append("  (one camera-day only: the last part of it is held out; add days or cameras for a fair split)")
    lines.append(f"{'class':<24}{'train boxes':>12}{'train imgs':>11}{'val boxes':>10}{'val imgs':>9}{'hard neg':>9}")
    for c in classes:
        lines.append(f"{c.label:<24}{c.boxes['train']:>12}{c.images['train']:>11}{c.boxes['val']:>10}"
                     f"{c.images['val']:>9}{sum(c.hard_negatives.values()):>9}")
    return lines


# ---- writing -------------------------------------------------------------------------------------------

def _place(src: Path, dest: Path) -> None:
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)  # same file system: no copy
    except OSError:
        shutil.copyfile(src, dest)


def write_yolo(frames: Sequence[LabelledFrame], out: Path, *, classes: Sequence[str] | None = None,
               val_fraction: float = 0.3, seed: int = 0) -> tuple[Split, list[str]]:
    """Write `out/images/{train,val}`, `out/labels/{train,val}`, `data.yaml`, `frames.jsonl`; returns
    the split and the class names (index = YOLO class id)."""
    seen = sorted({b.label for f in frames for b in f.boxes})
    names = list(classes) if classes else seen
    unknown = sorted(set(seen) - set(names))
    if unknown:
        raise DatasetError(f"labels {unknown} are not in the class list {names}")
    split = split_frames(frames, val_fraction, seed)
    records = []
    for part, part_frames in (("train", split.train), ("val", split.val)):
        (out / "images" / part).mkdir(parents=True, exist_ok=True)
        (out / "labels" / part).mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(part_frames):
            stem = f"{frame.camera_id}-{frame.taken_at.strftime('%Y%m%dT%H%M%S%f')}-{i:05d}"
            image_name = f"images/{part}/{stem}{frame.image.suffix.lower()}"
            _place(frame.image, out / image_name)
            lines = [b.yolo_line(names.index(b.label)) for b in frame.boxes]
            (out / "labels" / part / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
            records.append({**frame_record(frame, image_name), "split": part})
    (out / "data.yaml").write_text(yaml.safe_dump({
        "path": str(out.resolve()), "train": "images/train", "val": "images/val",
        "names": dict(enumerate(names)), "split_by": split.by,
    }, sort_keys=False, allow_unicode=True))
    (out / "frames.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return split, names


@dataclass(frozen=True)
class YoloDataset:
    """A dataset written by `write_yolo`, read back."""

    root: Path
    names: list[str]
    frames: dict[str, list[LabelledFrame]]  # split -> frames, images inside the dataset

    def images(self, part: str) -> list[Path]:
        return [f.image for f in self.frames.get(part, [])]

    def labels_dir(self, part: str) -> Path:
        return self.root / "labels" / part


def load_dataset(root: Path) -> YoloDataset:
    data_yaml = root / "data.yaml"
    if not data_yaml.is_file():
        raise DatasetError(f"{root} is not a dataset: no data.yaml (write one with `cityeye models dataset`)")
    data = yaml.safe_load(data_yaml.read_text()) or {}
    names_raw = data.get("names")
    if not isinstance(names_raw, dict | list) or not names_raw:
        raise DatasetError(f"{data_yaml}: field names must list the classes")
    names = [str(names_raw[k]) for k in sorted(names_raw)] if isinstance(names_raw, dict) else list(map(str, names_raw))
    frames: dict[str, list[LabelledFrame]] = {"train": [], "val": []}
    index = root / "frames.jsonl"
    for lineno, line in enumerate(index.read_text().splitlines() if index.is_file() else [], 1):
        raw = json.loads(line)
        part = raw.pop("split", "train")
        frames.setdefault(part, []).append(parse_frame(raw, root, f"{index}:{lineno}"))
    return YoloDataset(root, names, frames)
