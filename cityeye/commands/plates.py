"""`cityeye plates read IMAGE...`: the licence plates on still images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_MODEL = "coco-nanodet"


def register(sub: argparse._SubParsersAction) -> None:
    actions = sub.add_parser(
        "plates", help="read Chinese licence plates on images",
        description="Licence plates: the edge reads them on parked vehicles; this reads them on still "
        "images to check the reader on your own photos.").add_subparsers(
        dest="plates_command", required=True, metavar="ACTION")
    _register_read(actions.add_parser(
        "read", help="read the plates on images",
        description="Find the vehicles and read their plates (PP-OCRv4 on onnxruntime, restricted to "
        "well-formed Chinese plates). Prints one line per image; with --json, one JSON object per line: "
        '{"image", "plates": [{"text", "colour", "score", "box"}]} (box in pixels). An image without a '
        'legible plate gets "plates": [].'))


def _register_read(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"vehicle detector (default {DEFAULT_MODEL})")
    p.add_argument("--threads", type=int, help="onnxruntime threads (default: all cores)")
    p.set_defaults(func=_read)


def _read(args: argparse.Namespace) -> int:
    import cv2

    from edge_agent.detect import Detector
    from edge_agent.plates.image import read_image, vehicle_boxes
    from edge_agent.plates.ocr import ModelsMissing
    from edge_agent.plates.reader import PlateReader

    missing = [str(p) for p in args.images if not p.is_file()]
    if missing:
        print(f"cityeye plates read: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        reader = PlateReader(threads=args.threads)
    except ModelsMissing as exc:
        print(f"cityeye plates read: {exc}", file=sys.stderr)
        return 2
    detector = Detector.load(args.model, threads=args.threads)
    failed = 0
    for path in args.images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            print(f"cityeye plates read: {path}: not an image OpenCV can decode", file=sys.stderr)
            failed += 1
            continue
        plates = read_image(reader, image, vehicle_boxes(detector.detect([image])[0]))
        if args.json:
            print(json.dumps({"image": str(path), "plates": [
                {"text": p.read.text, "colour": p.read.colour.value, "score": round(p.read.score, 3),
                 "box": [round(v) for v in p.xyxy]} for p in plates]}, ensure_ascii=False), flush=True)
        else:
            shown = ", ".join(f"{p.read.text} ({p.read.colour.value}, {p.read.score:.2f})" for p in plates)
            print(f"{path}: {shown or 'no legible plate'}", flush=True)
    return 1 if failed else 0
