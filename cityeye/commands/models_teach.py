"""`cityeye models sample | dataset | fewshot | train`: teach CityEye a class from a bureau's own footage.

sample (frames to label) -> labels file (the hub's label API, or by hand) -> dataset (YOLO, split by
camera-day) -> fewshot (seconds, CPU) or train (ultralytics, the [train] extra) -> eval --compare.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path


def register(msub: argparse._SubParsersAction) -> None:
    p = msub.add_parser("sample", help="pick diverse frames to label from videos",
                        description="Frames spread over each camera's time, near-duplicates dropped; writes "
                        "JPEGs and a labels file (JSON lines, no boxes yet) to fill in.")
    p.add_argument("videos", nargs="+", help="CAMERA_ID=VIDEO (or just VIDEO: the camera id is its file name)")
    p.add_argument("--count", type=int, default=50, help="frames to pick in all (default 50)")
    p.add_argument("--start", help="ISO time the videos start (default: each file's modification time)")
    p.add_argument("--max-distance", type=int, default=4,
                   help="frames within this many dHash bits of a kept one are duplicates (default 4)")
    p.add_argument("--out", type=Path, required=True, help="folder for frames/ and labels.jsonl")
    p.add_argument("--prelabel", metavar="MODEL",
                   help="the detector in service proposes boxes on each frame (a cached name, an .onnx or a few-shot "
                   "head .json): reviewers then only correct them; written as 'proposals' in labels.jsonl")
    p.add_argument("--min-score", type=float, default=0.35, help="with --prelabel: lowest score proposed (0.35)")
    p.add_argument("--labels", help="with --prelabel: only propose these labels (comma-separated)")
    p.add_argument("--hub", metavar="URL",
                   help="also queue the frames (with their proposals) for labelling on this hub "
                   "(POST /labels/frames; the reviewer or admin token comes from --token or $CITYEYE_TOKEN)")
    p.add_argument("--token", help="with --hub: API token (default $CITYEYE_TOKEN)")
    p.set_defaults(func=_sample)

    p = msub.add_parser("dataset", help="write a YOLO dataset from a labels file, split by camera and day",
                        description="Write images/, labels/, data.yaml and frames.jsonl; no camera-day is on "
                        "both sides of the split. Prints a summary per class.")
    p.add_argument("labels", type=Path, help="labels file (JSON lines; see models/dataset.py)")
    p.add_argument("--out", type=Path, required=True, help="dataset folder")
    p.add_argument("--classes", help="comma-separated class names in id order (default: sorted labels seen)")
    p.add_argument("--val", type=float, default=0.3, help="share of frames held out (default 0.3)")
    p.add_argument("--seed", type=int, default=0, help="which camera-days are held out (default 0)")
    p.add_argument("--no-pseudo", action="store_true",
                   help="leave out pseudo-labelled frames (detector pre-labels a reviewer corrected; default: in)")
    p.set_defaults(func=_dataset)

    p = msub.add_parser("fewshot", help="teach labels from tens of examples in seconds (CPU)",
                        description="Fit few-shot heads on the features of a detector we already run: "
                        "'cells' heads find small objects (from a dataset's train split), 'state' heads tell "
                        "whether a zone's crop is in a state (from folders of crops). Cross-validated.")
    p.add_argument("--kind", choices=("cells", "state"), default="cells")
    p.add_argument("--data", type=Path, help="cells: dataset folder (its train split is used)")
    p.add_argument("--label", action="append", required=True, help="label to teach (repeat for several cells heads)")
    p.add_argument("--positives", type=Path, help="state: folder of crops in the state")
    p.add_argument("--negatives", type=Path, help="state: folder of crops not in it")
    p.add_argument("--backbone", default="coco-nanodet", help="detector whose features are used")
    p.add_argument("--name", required=True, help="model name reported in events (lowercase, digits, _.-)")
    p.add_argument("--out", type=Path, required=True, help="head file to write (.json)")
    p.set_defaults(func=_fewshot)

    p = msub.add_parser("train", help="train a detector with ultralytics (the [train] extra), export to ONNX",
                        description="Fine-tune a YOLO detector on a dataset (CPU works, slowly); resumes an "
                        "interrupted run from its last checkpoint; exports ONNX with labels and input size and "
                        "adds it to the model cache with a manifest.")
    p.add_argument("--data", type=Path, required=True, help="dataset folder (data.yaml)")
    p.add_argument("--base", default="yolov8n.yaml",
                   help="starting weights (.pt) or architecture (.yaml, from scratch); default yolov8n.yaml")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--name", required=True, help="model name in the cache")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="where checkpoints go (default ./runs)")
    p.set_defaults(func=_train)


def _err(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _parse_video(spec: str) -> tuple[str, Path]:
    camera, sep, path = spec.partition("=")
    return (camera, Path(path)) if sep else (Path(spec).stem, Path(spec))


def _sample(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from models.sampler import sample_frames

    videos = []
    for spec in args.videos:
        camera, path = _parse_video(spec)
        if not path.is_file():
            return _err(f"video {path} does not exist")
        try:
            start = (datetime.fromisoformat(args.start) if args.start
                     else datetime.fromtimestamp(path.stat().st_mtime, UTC))
        except ValueError:
            return _err(f"--start {args.start!r} is not an ISO 8601 time")
        videos.append((camera, path, start))
    try:
        with tqdm(unit="frame", desc="sample", disable=not sys.stderr.isatty()) as bar:
            picked = sample_frames(videos, args.count, max_distance=args.max_distance, on_progress=bar.update)
    except ValueError as exc:
        return _err(str(exc))
    token = args.token or os.environ.get("CITYEYE_TOKEN")
    if args.hub and not token:
        return _err("--hub needs a reviewer or admin API token: --token or $CITYEYE_TOKEN")
    if args.labels and not args.prelabel:
        return _err("--labels only applies with --prelabel")
    propose, model = None, None
    if args.prelabel:
        try:
            propose, model = _prelabeller(args.prelabel, args.min_score, args.labels)
        except (LookupError, ValueError, OSError) as exc:
            return _err(f"--prelabel {args.prelabel}: {exc}")
    frames = args.out / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    records = []
    for s in tqdm(picked, unit="frame", desc="pre-label" if propose else "write", disable=not sys.stderr.isatty()):
        name = f"frames/{s.camera_id}-{s.index:06d}.jpg"
        cv2.imwrite(str(args.out / name), s.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        record = {"image": name, "camera_id": s.camera_id, "taken_at": s.taken_at.isoformat(), "source": "review",
                  "boxes": []}
        if propose is not None:
            record["proposals"] = propose(s.image)
        records.append(record)
    (args.out / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    proposed = sum(len(r.get("proposals", [])) for r in records)
    print(f"{len(picked)} frames from {len(videos)} camera(s) in {frames}; label them in {args.out / 'labels.jsonl'}"
          + (f"; {proposed} boxes proposed by {model['name']}" if model else ""))
    if args.hub:
        try:
            queued = _queue_on_hub(args.hub, token or "", args.out, records, model)
        except (OSError, ValueError) as exc:
            return _err(f"--hub {args.hub}: {exc}")
        print(f"{queued} frames queued for labelling on {args.hub} (page: labelling queue)")
    return 0


def _prelabeller(model: str, min_score: float, labels: str | None) -> tuple:
    """(image -> proposals, {"name", "sha256"}) for the detector `model`."""
    from edge_agent.fewshot import load_detector
    from models.prelabel import proposals

    detector, _ = load_detector(model)
    keep = {x.strip() for x in labels.split(",") if x.strip()} if labels else None
    manifest = detector.manifest
    info = {"name": manifest.name, "sha256": manifest.sha256}
    return (lambda image: proposals(detector, image, min_score=min_score, labels=keep)), info


def _queue_on_hub(hub: str, token: str, out: Path, records: list[dict], model: dict | None) -> int:
    """POST each frame and its proposals to the hub's labelling queue; stops at the first refusal."""
    import httpx

    with httpx.Client(base_url=hub.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for record in records:
            data = {"camera_id": record["camera_id"], "taken_at": record["taken_at"],
                    "proposals": json.dumps(record.get("proposals", []))}
            if model:
                data["proposed_by"] = json.dumps(model)
            image = (out / record["image"]).read_bytes()
            try:
                r = client.post("/labels/frames", data=data, files={"image": ("frame.jpg", image, "image/jpeg")})
            except httpx.HTTPError as exc:
                raise OSError(str(exc)) from exc
            if r.status_code != 201:
                raise ValueError(f"{record['image']}: HTTP {r.status_code} {r.text[:300]}")
    return len(records)


def _dataset(args: argparse.Namespace) -> int:
    from models.dataset import DatasetError, format_summary, read_labels, summarise, write_yolo

    try:
        frames = read_labels(args.labels)
        if args.no_pseudo:
            frames = [f for f in frames if f.source != "pseudo"]
            if not frames:
                return _err(f"{args.labels}: every frame is pseudo-labelled and --no-pseudo leaves none")
        classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
        split, names = write_yolo(frames, args.out, classes=classes, val_fraction=args.val, seed=args.seed)
    except DatasetError as exc:
        return _err(str(exc))
    for line in format_summary(split, summarise(split)):
        print(line)
    print(f"dataset: {args.out / 'data.yaml'} ({len(names)} classes)")
    return 0


def _read_crops(folder: Path | None, option: str) -> list:
    import cv2

    from models.evaluate import list_images

    if folder is None or not folder.is_dir():
        raise ValueError(f"{option} must be a folder of crops, got {folder}")
    crops = []
    for path in list_images(folder):
        image = cv2.imread(str(path))
        if image is None:
            raise ValueError(f"{path}: not a readable image")
        crops.append(image)
    return crops


def _fewshot(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from edge_agent.fewshot import feature_backend
    from models.cache import ModelNotFoundError
    from models.dataset import DatasetError, load_dataset
    from models.fewshot import FewShotError
    from models.fewshot_train import train_cells, train_state

    started = time.perf_counter()
    try:
        backend = feature_backend(args.backbone)
        if args.kind == "cells":
            if args.data is None:
                return _err("--data (a dataset folder) is needed for a cells head")
            frames = load_dataset(args.data).frames["train"]
            with tqdm(total=len(frames), unit="img", desc="features", disable=not sys.stderr.isatty()) as bar:
                model = train_cells(frames, args.label, backend, args.name, on_progress=bar.update)
        else:
            if len(args.label) != 1:
                return _err("a state head has one --label (the state)")
            crops = [(c, True) for c in _read_crops(args.positives, "--positives")]
            crops += [(c, False) for c in _read_crops(args.negatives, "--negatives")]
            model = train_state(crops, args.label[0], backend, args.name)
    except (FewShotError, DatasetError, ModelNotFoundError, ValueError) as exc:
        return _err(str(exc))
    model.save(args.out)
    print(f"{model.name}: {args.out} ({model.kind}, on {model.backbone.name}, {time.perf_counter() - started:.1f} s)")
    for head in model.heads:
        v = head.validation
        print(f"  {head.label:<20} threshold {head.threshold:.3f}  cross-validated ({v['folds']} folds, "
              f"{v['positives']} positive / {v['negatives']} negative examples): P {v['precision']:.3f} "
              f"R {v['recall']:.3f} AP {v['average_precision']:.3f}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from models.manifest import ManifestError
    from models.train import TrainError, train_detector

    try:
        resolved = train_detector(args.data, base=args.base, epochs=args.epochs, imgsz=args.imgsz,
                                  name=args.name, runs=args.runs)
    except (TrainError, ManifestError) as exc:
        return _err(str(exc))
    m = resolved.manifest
    print(f"{m.name}: {resolved.onnx_path} ({len(m.labels)} labels, input {m.input.width}x{m.input.height}); "
          f"compare it: cityeye models eval --data {args.data} --compare coco-nanodet {m.name}")
    return 0
