"""What a few-shot head costs the edge: CPU ms per frame of the detector alone and with the head,
measured A/B in one process (interleaved rounds, 1 onnxruntime thread, process CPU time), and the
share of a core one stream takes at a given detect rate. Also the head's training time.

Usage: .venv/bin/python bench/fewshot.py --head cones.json [--data DATASET] [--frames 20] [--rounds 5] [--fps 2]
       [--also MODEL ...]
(make a head and dataset with `cityeye models dataset` and `cityeye models fewshot`, see README). `--also`
times other detectors in the same interleaved rounds (a trained `cityeye models train` model, say).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from detect import frames  # bench/detect.py: vtest.avi's first frames (noise without ../shared)

from edge_agent.detect import Detector
from edge_agent.fewshot import FewShotDetector, feature_backend
from models.dataset import load_dataset
from models.fewshot import load_model
from models.fewshot_train import train_cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", type=Path, required=True, help="a cells head file (.json)")
    parser.add_argument("--data", type=Path, help="dataset to time training on (its train split)")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fps", type=float, default=2.0, help="detect rate of one stream")
    parser.add_argument("--also", action="append", default=[], help="another detector to time (name or .onnx)")
    args = parser.parse_args()
    base = Detector.load(load_model(args.head).backbone.name, threads=1)
    taught = FewShotDetector.load(args.head, threads=1)
    images = frames(args.frames)
    models = [("detector", base), ("detector + head", taught)]
    models += [(name, Detector.load(name, threads=1)) for name in args.also]
    cpu = {name: 0.0 for name, _ in models}
    for _ in range(args.rounds):
        for name, model in models:
            started = time.process_time()
            for image in images:
                model.detect([image])
            cpu[name] += time.process_time() - started
    n = args.rounds * len(images)
    print(f"{n} frames of {images[0].shape[1]}x{images[0].shape[0]} each, 1 onnxruntime thread, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for name, seconds in cpu.items():
        ms = 1000 * seconds / n
        share = ms * args.fps / 10
        print(f"{name:<16} {ms:6.1f} CPU ms/frame   one stream at {args.fps:g} fps: {share:5.1f}% of a core")
    extra = cpu["detector + head"] / cpu["detector"]
    print(f"ratio with head / without: {extra:.2f}x")
    if args.data:
        train = load_dataset(args.data).frames["train"]
        started, cpu_started = time.perf_counter(), time.process_time()
        train_cells(train, list(load_model(args.head).labels), feature_backend(), "bench-head")
        print(f"training on {len(train)} frames: {time.perf_counter() - started:.1f} s wall, "
              f"{time.process_time() - cpu_started:.1f} s CPU (features, 5-fold cross-validation, fit)")


if __name__ == "__main__":
    main()
