"""Cost of change rules (`source: change`) per stream: capacity with them on vs off in one run.

N vtest.avi streams replay interleaved (every frame decoded, as from live cameras) with motion gating
on, as fast as possible, through the real detector: once with detector rules on three zones (parking,
begging on the plaza, furniture in a bin corner), once with the same plus two change rules (garbage on
the plaza, an overflowing bin corner). Rounds alternate off/on so load drift on a shared box hits
both alike. The cost is judged by CPU per stream (what a box of its own would sustain: cores / CPU
per stream); the capacity by the wall, which moves with whatever else a shared box runs, is printed
beside it. The reference is learned in the first 4 s (`learn_s`), so the rest of each
replay is steady-state analysis (the learning phase is cheaper). Also prints the time inside
`ChangeWatch.update` per analysis.

    .venv/bin/python bench/change.py [--streams 8] [--seconds 30] [--rounds 2] [--detect-fps 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

from replay_cost import VTEST, MethodTimer, replay

from edge_agent.change.watch import ChangeWatch
from edge_agent.config import CameraConfig, parse_camera_config
from edge_agent.detect import Detector

PLAZA = [[0.0, 0.38], [0.6, 0.38], [0.75, 0.32], [1.0, 0.5], [1.0, 0.85], [0.45, 0.62], [0.0, 0.45]]
BINS = [[0.55, 0.15], [0.7, 0.15], [0.7, 0.3], [0.55, 0.3]]
TARGET = 0.15  # the issue's bound on the cost


def camera(i: int, detect_fps: float, change: bool) -> CameraConfig:
    # The same detector rules both ways, so motion gating wakes the detector for the same zones: a change
    # rule needs the detector's tracks of people in its zone anyway (they are masked out).
    rules: list[dict[str, Any]] = [
        {"class_id": "illegal_car_parking", "zones": ["np"], "params": {"min_dwell_s": 20}},
        {"class_id": "begging", "zones": ["plaza"], "params": {"min_dwell_s": 30}},
        {"class_id": "discarded_furniture", "zones": ["bins"]}]
    if change:
        rules += [{"class_id": "exposed_garbage", "zones": ["plaza"], "source": "change",
                   "params": {"min_dwell_s": 10}},
                  {"class_id": "overflowing_garbage_bin", "zones": ["bins"], "source": "change",
                   "params": {"min_dwell_s": 10}}]
    return parse_camera_config({
        "id": f"cam{i:02d}", "source": str(VTEST), "timezone": "Asia/Shanghai", "detect_fps": detect_fps,
        "start_time": "2026-03-02T10:00:00", "change": {"learn_s": 4, "learn_samples": 4},
        "zones": [{"id": "np", "kind": "no_parking", "polygon": [[0.8, 0.03], [1, 0.03], [1, 0.22], [0.8, 0.22]]},
                  {"id": "plaza", "kind": "plaza", "polygon": PLAZA},
                  {"id": "bins", "kind": "bin_area", "polygon": BINS}],
        "rules": rules,
    })


def run(detector: Detector, streams: int, seconds: float, detect_fps: float, change: bool) -> dict[str, float]:
    pipeline, r = replay([camera(i, detect_fps, change) for i in range(streams)], detector, seconds,
                         MethodTimer(ChangeWatch, "update"))
    analyses = sum(rt.change.analyses for rt in pipeline.cameras.values() if rt.change is not None)
    return {**r, "change_s": r["timed_s"], "analyses": analyses,
            "ms_per_analysis": r["timed_s"] * 1000 / analyses if analyses else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of the clip per stream")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs, alternating")
    parser.add_argument("--detect-fps", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=None, help="detector threads (default: all cores)")
    args = parser.parse_args()
    if not VTEST.is_file():
        print(f"{VTEST} is absent: nothing to benchmark on")
        return 1
    detector = Detector.load("coco-nanodet", threads=args.threads)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {args.streams} streams of vtest.avi "
          f"({args.seconds:g} s each), {args.detect_fps:g} detect-fps, motion gating on, {args.rounds} rounds")
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for n in range(args.rounds):
        for change in (False, True):
            r = run(detector, args.streams, args.seconds, args.detect_fps, change)
            results[change].append(r)
            print(f"round {n + 1} change rules {'on ' if change else 'off'}: {r['capacity']:5.1f} streams "
                  f"sustained | CPU/stream {r['cpu_per_stream'] * 100:5.1f}% of a core | wall {r['wall_s']:.1f} s"
                  f" | {int(r['detected'])} detections" + (
                      f" | {int(r['analyses'])} analyses, {r['ms_per_analysis']:.1f} ms each, "
                      f"{r['change_s'] / r['wall_s']:.1%} of the wall time" if change else ""))
    off = statistics.median(r["capacity"] for r in results[False])
    on = statistics.median(r["capacity"] for r in results[True])
    cpu_off = statistics.median(r["cpu_per_stream"] for r in results[False])
    cpu_on = statistics.median(r["cpu_per_stream"] for r in results[True])
    # A CPU-bound box sustains cores / (CPU per stream) streams, so the CPU ratio is the capacity cost on a
    # box of its own; the wall-clock capacity also moves with whatever else a shared box runs meanwhile.
    cost = 1 - cpu_off / cpu_on
    print(f"median capacity by the wall off {off:.1f}, on {on:.1f} streams ({1 - on / off:.1%} less); "
          f"CPU per stream x{cpu_on / cpu_off:.2f}: change rules cost {cost:.1%} of capacity")
    print(f"target cost <= {TARGET:.0%}: {'met' if cost <= TARGET else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
