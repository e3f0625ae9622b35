"""Cost of zone-state rules (`source: state`) per stream: CPU with them on vs off in one run.

N vtest.avi streams replay interleaved (every frame decoded, as from live cameras) with motion gating
on, through the real detector: once with detector rules only, once with the same plus two state rules
per camera (a bin corner and a stall spot, each a few-shot state head on its zone's crop every
`--every` seconds, default 5 s = 0.2 Hz). Rounds alternate off/on so load drift on a shared box hits
both alike; the cost is judged by CPU per stream (see bench/change.py for why not the wall). Also prints
the time per head evaluation.

The head is a state head on the detector's own features (`cityeye models fewshot --kind state`); with
no `--head` one is fitted here from crops of the clip (what it learned does not change its cost: one
pooled-feature inference of the crop and a linear probe).

    .venv/bin/python bench/zone_state.py [--streams 4] [--seconds 30] [--rounds 2] [--every 5] [--head H.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import cv2
from replay_cost import VTEST, MethodTimer, replay

from edge_agent.config import CameraConfig, parse_camera_config
from edge_agent.detect import Detector
from edge_agent.zone_state import StateHeads, ZoneState

BINS = [[0.55, 0.15], [0.7, 0.15], [0.7, 0.3], [0.55, 0.3]]
SPOT = [[0.56, 0.48], [0.72, 0.48], [0.72, 0.6], [0.56, 0.6]]


def fit_head(path: Path) -> Path:
    """A state head from crops of the clip's bin corner: early frames "in the state", later ones not."""
    from edge_agent.fewshot import feature_backend
    from models.fewshot_train import train_state

    cap = cv2.VideoCapture(str(VTEST))
    crops = []
    for i in range(0, 400, 25):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, image = cap.read()
        if not ok:
            break
        h, w = image.shape[:2]
        crops.append((image[int(0.15 * h):int(0.3 * h), int(0.55 * w):int(0.7 * w)], i < 200))
    cap.release()
    train_state(crops, "full", feature_backend(), "bench-bins").save(path)
    return path


def camera(i: int, detect_fps: float, head: Path | None, every_s: float) -> CameraConfig:
    rules: list[dict[str, Any]] = [
        {"class_id": "illegal_car_parking", "zones": ["np"], "params": {"min_dwell_s": 20}},
        {"class_id": "discarded_furniture", "zones": ["bins"]}]
    if head is not None:
        params = {"model": str(head), "every_s": every_s, "min_dwell_s": 60}
        rules += [{"class_id": "overflowing_garbage_bin", "zones": ["bins"], "source": "state", "params": params},
                  {"class_id": "exposed_garbage", "zones": ["spot"], "source": "state", "params": params}]
    return parse_camera_config({
        "id": f"cam{i:02d}", "source": str(VTEST), "timezone": "Asia/Shanghai", "detect_fps": detect_fps,
        "start_time": "2026-03-02T10:00:00",
        "zones": [{"id": "np", "kind": "no_parking", "polygon": [[0.8, 0.03], [1, 0.03], [1, 0.22], [0.8, 0.22]]},
                  {"id": "bins", "kind": "bin_area", "polygon": BINS},
                  {"id": "spot", "kind": "sidewalk", "polygon": SPOT}],
        "rules": rules,
    })


def run(detector: Detector, heads: StateHeads, streams: int, seconds: float, detect_fps: float,
        head: Path | None, every_s: float) -> dict[str, float]:
    _, r = replay([camera(i, detect_fps, head, every_s) for i in range(streams)], detector, seconds,
                  MethodTimer(ZoneState, "update"), heads=heads)
    checks = r["timed_calls"]
    return {**r, "head_s": r["timed_s"], "checks": checks,
            "ms_per_check": r["timed_s"] * 1000 / checks if checks else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of the clip per stream")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs, alternating")
    parser.add_argument("--detect-fps", type=float, default=2.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between a state rule's evaluations")
    parser.add_argument("--head", type=Path, help="state head file (default: one fitted here from the clip)")
    parser.add_argument("--threads", type=int, default=None, help="detector threads (default: all cores)")
    args = parser.parse_args()
    if not VTEST.is_file():
        print(f"{VTEST} is absent: nothing to benchmark on")
        return 1
    detector = Detector.load("coco-nanodet", threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        head = args.head or fit_head(Path(tmp) / "bins.json")
        heads = StateHeads()  # one thread: the low-rate head must not compete with the detector
        heads.get(str(head))  # loaded before the clock starts, as an agent does at start-up
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {args.streams} streams of vtest.avi "
              f"({args.seconds:g} s each), {args.detect_fps:g} detect-fps, motion gating on, 2 state rules per "
              f"camera every {args.every:g} s, {args.rounds} rounds")
        results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for n in range(args.rounds):
            for on in (False, True):
                r = run(detector, heads, args.streams, args.seconds, args.detect_fps, head if on else None,
                        args.every)
                results[on].append(r)
                print(f"round {n + 1} state rules {'on ' if on else 'off'}: {r['capacity']:5.1f} streams "
                      f"sustained | CPU/stream {r['cpu_per_stream'] * 100:5.2f}% of a core | wall {r['wall_s']:.1f} s"
                      f" | {int(r['detected'])} detections" + (
                          f" | {int(r['checks'])} head checks, {r['ms_per_check']:.1f} ms each" if on else ""))
    cpu_off = statistics.median(r["cpu_per_stream"] for r in results[False])
    cpu_on = statistics.median(r["cpu_per_stream"] for r in results[True])
    print(f"CPU per stream off {cpu_off * 100:.2f}%, on {cpu_on * 100:.2f}% of a core (x{cpu_on / cpu_off:.2f}): "
          f"2 state rules every {args.every:g} s cost {(cpu_on - cpu_off) * 100:.2f}% of a core per stream")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
