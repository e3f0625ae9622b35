"""Plate reading cost: milliseconds per vehicle read, and what reading costs the edge's capacity.

1. ms per vehicle read: `PlateReader.read` on the vehicle of each labelled photo in
   ../shared/fixtures/plates (the detector's vehicle box where it finds one, else the whole photo,
   which is a close-up), median of --rounds, with how many it read exactly.
2. Edge capacity (bench/edge.py's replay of vtest.avi streams) with plates off and on, in the same
   process one after the other, and the ratio; then the same on a parked-car video made from the
   street photo, where a plate is legible and really read.

    .venv/bin/python bench/plates.py [--rounds 3] [--streams 8] [--seconds 30]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "edge_agent" / "plates"))

from edge_agent.detect import Detector  # noqa: E402
from edge_agent.plates.image import vehicle_boxes, vehicle_crop  # noqa: E402
from edge_agent.plates.reader import PlateReader  # noqa: E402

PLATES = ROOT.parent / "shared" / "fixtures" / "plates"


def vehicle_of(detector: Detector, image) -> tuple:  # type: ignore[no-untyped-def]
    """The widest vehicle the detector finds, else the whole image (a close-up)."""
    boxes = vehicle_boxes(detector.detect([image])[0])
    if not boxes:
        return image, "whole photo"
    crop, _ = vehicle_crop(image, max(boxes, key=lambda b: b[2] - b[0]))
    return crop, "vehicle box"


def read_timings(reader: PlateReader, detector: Detector, rounds: int) -> list[float]:
    with (PLATES / "labels.csv").open(encoding="utf-8") as f:
        labels = [row for row in csv.DictReader(f) if row["plate"]]
    all_ms, exact = [], 0
    for row in labels:
        crop, what = vehicle_of(detector, cv2.imread(str(PLATES / row["file"]), cv2.IMREAD_COLOR))
        times, reads = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            reads = reader.read(crop)
            times.append((time.perf_counter() - t0) * 1000)
        text = reads[0].text if reads else "-"
        exact += text == row["plate"]
        ms = statistics.median(times)
        all_ms.append(ms)
        print(f"  {row['file']:28s} {crop.shape[1]:4d}x{crop.shape[0]:<4d} ({what}) {ms:6.0f} ms  read {text}"
              f"{'' if text == row['plate'] else '  (labelled ' + row['plate'] + ')'}")
    print(f"ms per vehicle read: median {statistics.median(all_ms):.0f}, max {max(all_ms):.0f} "
          f"({exact}/{len(labels)} read exactly)")
    return all_ms


def capacity(detector: Detector, args: argparse.Namespace) -> None:
    """bench/edge.py's run with plates off then on (same process, same detector)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import edge  # bench/edge.py
    from parked_video import STREET, STREET_ZONE, parked_car_video

    cases = [("vtest.avi", edge.VTEST, None)]
    with tempfile.TemporaryDirectory() as tmp:
        street = parked_car_video(PLATES.parent / STREET, Path(tmp) / "parked.avi", seconds=args.seconds)
        cases.append(("parked street car (1920x1080)", street, STREET_ZONE))
        for name, video, zone in cases:
            runs = {}
            for plates in (False, True):
                runs[plates] = r = edge.run_plates(detector, args, video, zone, plates)
                print(f"{name}: plates {'on ' if plates else 'off'}: {r['capacity']:5.1f} streams | "
                      f"CPU/stream {r['cpu_per_stream'] * 100:5.1f}% | {int(r['reads'])} plate reads "
                      f"({r['read_ms']:.0f} ms each) | {int(r['events'])} events")
            cost = 1 - runs[True]["capacity"] / runs[False]["capacity"]
            print(f"{name}: plates cost {cost:.1%} of capacity (target <= 10%: {'met' if cost <= 0.10 else 'NOT met'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="reads per photo (median)")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of video per stream")
    parser.add_argument("--detect-fps", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--skip-capacity", action="store_true", help="only time the reads")
    args = parser.parse_args()
    if not (PLATES / "labels.csv").is_file():
        print(f"{PLATES} is absent: nothing to benchmark on")
        return 1
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; PP-OCRv4 det+rec on onnxruntime")
    detector = Detector.load("coco-nanodet", threads=args.threads)
    read_timings(PlateReader(threads=args.threads), detector, args.rounds)
    if not args.skip_capacity:
        capacity(detector, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
