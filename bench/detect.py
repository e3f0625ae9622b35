"""Detector throughput on this machine: ms per frame one at a time vs batched, and the ratio.

Usage: .venv/bin/python bench/detect.py [--model coco-nanodet] [--frames 40] [--batch 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from edge_agent.detect import Detector

VTEST = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "video" / "vtest.avi"


def frames(count: int) -> list[np.ndarray]:
    if VTEST.is_file():
        capture = cv2.VideoCapture(str(VTEST))
        out = []
        while len(out) < count:
            ok, frame = capture.read()
            if not ok:
                break
            out.append(frame)
        if out:
            return out
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (576, 768, 3), np.uint8) for _ in range(count)]


def timed(fn, repeat: int) -> float:
    fn()  # warm up
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="coco-nanodet")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    detector = Detector.load(args.model, threads=args.threads)
    images = frames(args.frames)
    single = timed(lambda: [detector.detect([f]) for f in images], 1) / len(images)
    batches = [images[i:i + args.batch] for i in range(0, len(images), args.batch)]
    batched = timed(lambda: [detector.detect(b) for b in batches], 1) / len(images)
    print(f"model {detector.manifest.name}, {len(images)} frames of {images[0].shape[1]}x{images[0].shape[0]}, "
          f"{args.threads} threads")
    print(f"one at a time : {single * 1000:7.1f} ms/frame  ({1 / single:6.1f} frames/s)")
    print(f"batch of {args.batch:<5}: {batched * 1000:7.1f} ms/frame  ({1 / batched:6.1f} frames/s)")
    print(f"ratio batched/single throughput: {single / batched:.2f}x")


if __name__ == "__main__":
    main()
