"""Plate reading cost: milliseconds per vehicle read, and what reading costs the edge's capacity.

1. ms per vehicle read: `PlateReader.read` on the vehicle of each labelled photo in
   ../shared/fixtures/plates (the detector's vehicle box where it finds one, else the whole photo,
   which is a close-up), median of --rounds, with how many it read exactly.
2. Edge capacity (N cameras replayed as fast as the box goes, as bench/edge.py does) with plates
   off and on, in the same process one after the other, and the ratio: on vtest.avi (its parked van
   and car are too small to read: the cost is the watcher's bookkeeping and the stills) and on a
   parked-car video made from the street photo, where the plate is legible and really read.

    .venv/bin/python bench/plates.py [--rounds 3] [--streams 8] [--seconds 30] [--repeats 3]
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

from edge_agent.config import parse_camera_config  # noqa: E402
from edge_agent.detect import Detector  # noqa: E402
from edge_agent.ingest import FileReplay  # noqa: E402
from edge_agent.pipeline import Pipeline  # noqa: E402
from edge_agent.plates.image import vehicle_boxes, vehicle_crop  # noqa: E402
from edge_agent.plates.reader import PlateReader  # noqa: E402
from edge_agent.sinks import MemorySink  # noqa: E402

PLATES = ROOT.parent / "shared" / "fixtures" / "plates"
READER: PlateReader | None = None  # one reader for every run, loaded once


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


def replay_capacity(detector: Detector, video: Path, zone: dict, streams: int, seconds: float, detect_fps: float,
                    plates: bool) -> dict[str, float]:
    """N cameras replaying `video` with a parking rule on `zone`, as fast as the box goes."""
    configs = [parse_camera_config({
        "id": f"cam{i:02d}", "source": str(video), "timezone": "Asia/Shanghai", "detect_fps": detect_fps,
        "start_time": "2026-03-02T10:00:00", "zones": [zone], "plates": {"enabled": plates},
        "rules": [{"class_id": "illegal_car_parking", "zones": [zone["id"]], "params": {"min_dwell_s": 10}}],
    }) for i in range(streams)]
    sink = MemorySink()
    pipeline = Pipeline(configs, detector, sink, device_id="bench", plate_reader=READER)
    replays = {c.id: FileReplay(c.id, video, sample_fps=c.sample_fps(), start_time=c.start_epoch() or 0.0,
                                end_s=seconds) for c in configs}
    video_s = min(seconds, next(iter(replays.values())).duration_s)
    t0 = time.perf_counter()
    pipeline.run_replays(replays)
    wall = time.perf_counter() - t0
    watchers = [rt.plates for rt in pipeline.cameras.values() if rt.plates is not None]
    reads = sum(w.reads for w in watchers)
    return {"capacity": streams * video_s / wall, "reads": reads, "events": len(sink.items),
            "read_ms": 1000 * sum(w.read_s for w in watchers) / max(1, reads)}


def capacity(detector: Detector, args: argparse.Namespace) -> None:
    """Capacity with plates off, then on, in this process with the same detector and reader."""
    from parked_video import STREET, STREET_ZONE, parked_car_video

    vtest = ROOT.parent / "shared" / "fixtures" / "video" / "vtest.avi"
    vtest_zone = {"id": "np", "kind": "no_parking", "polygon": [[0.8, 0.03], [1, 0.03], [1, 0.22], [0.8, 0.22]]}
    with tempfile.TemporaryDirectory() as tmp:
        street = parked_car_video(PLATES.parent / STREET, Path(tmp) / "parked.avi", seconds=args.seconds)
        cases = [("vtest.avi", vtest, vtest_zone, args.streams),
                 ("parked street car 1920x1080", street, STREET_ZONE, max(1, args.streams // 4))]
        for name, video, zone, streams in cases:
            runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
            for _ in range(args.repeats):  # off, on, off, on, ...: the box's load drifts over a run
                for plates in (False, True):
                    runs[plates].append(r := replay_capacity(detector, video, zone, streams, args.seconds,
                                                             args.detect_fps, plates))
                    print(f"{name} x{streams}: plates {'on ' if plates else 'off'}: {r['capacity']:5.1f} streams "
                          f"sustained | {int(r['reads'])} plate reads ({r['read_ms']:.0f} ms each) | "
                          f"{int(r['events'])} events", flush=True)
            off = statistics.median(r["capacity"] for r in runs[False])
            on = statistics.median(r["capacity"] for r in runs[True])
            cost = 1 - on / off
            print(f"{name}: median of {args.repeats}: off {off:.2f}, on {on:.2f} streams: plates cost {cost:.1%} "
                  f"of capacity (target <= 10%: {'met' if cost <= 0.10 else 'NOT met'})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="reads per photo (median)")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of video per stream")
    parser.add_argument("--detect-fps", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--repeats", type=int, default=3, help="off/on pairs per video (medians compared)")
    parser.add_argument("--skip-capacity", action="store_true", help="only time the reads")
    args = parser.parse_args()
    if not (PLATES / "labels.csv").is_file():
        print(f"{PLATES} is absent: nothing to benchmark on")
        return 1
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; PP-OCRv4 det+rec on onnxruntime")
    global READER
    detector = Detector.load("coco-nanodet", threads=args.threads)
    READER = PlateReader(threads=args.threads)
    read_timings(READER, detector, args.rounds)
    if not args.skip_capacity:
        capacity(detector, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
