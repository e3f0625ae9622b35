"""Edge throughput: how many vtest.avi streams one box sustains at 2 detect-fps, with and without
motion gating, CPU per stream and detector calls saved.

Each mode replays N copies of the clip interleaved (one batched detector call per tick, every frame
decoded as a live camera would), as fast as possible. Capacity = N x video seconds / wall seconds:
the number of real-time streams this box could keep up with.

    .venv/bin/python bench/edge.py [--streams 16] [--seconds 30] [--detect-fps 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.config import parse_camera_config
from edge_agent.detect import Detector
from edge_agent.ingest import FileReplay
from edge_agent.pipeline import Pipeline
from edge_agent.sinks import MemorySink

VTEST = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "video" / "vtest.avi"


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def camera(i: int, detect_fps: float, gating: bool):
    return parse_camera_config({
        "id": f"cam{i:02d}", "source": str(VTEST), "timezone": "Asia/Shanghai", "detect_fps": detect_fps,
        "start_time": "2026-03-02T10:00:00", "motion": {"enabled": gating},
        "zones": [{"id": "np", "kind": "no_parking", "polygon": [[0.8, 0.03], [1, 0.03], [1, 0.22], [0.8, 0.22]]}],
        "rules": [{"class_id": "illegal_car_parking", "zones": ["np"], "params": {"min_dwell_s": 20}}],
    })


def run(detector: Detector, streams: int, seconds: float, detect_fps: float, gating: bool) -> dict[str, float]:
    configs = [camera(i, detect_fps, gating) for i in range(streams)]
    sink = MemorySink()
    pipeline = Pipeline(configs, detector, sink, device_id="bench")
    sources = {c.id: FileReplay(c.id, VTEST, sample_fps=c.sample_fps(), start_time=c.start_epoch() or 0.0,
                                end_s=seconds) for c in configs}
    video_s = next(iter(sources.values())).duration_s
    cpu0, t0 = cpu_s(), time.perf_counter()
    pipeline.run_replays(sources)
    wall, cpu = time.perf_counter() - t0, cpu_s() - cpu0
    cams = [pipeline.cameras[c.id].metrics for c in configs]
    sampled = sum(m.frames_sampled for m in cams)
    detected = sum(m.detect_frames for m in cams)
    return {"wall_s": wall, "cpu_s": cpu, "video_s": video_s, "capacity": streams * video_s / wall,
            "cpu_per_stream": cpu / (streams * video_s), "sampled": sampled, "detected": detected,
            "saved": sampled - detected, "events": len(sink.items),
            "detect_fps_achieved": detected / wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of the clip to replay per stream")
    parser.add_argument("--detect-fps", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=None, help="detector threads (default: all cores)")
    args = parser.parse_args()
    if not VTEST.is_file():
        print(f"{VTEST} is absent: nothing to benchmark on")
        return 1
    detector = Detector.load("coco-nanodet", threads=args.threads)
    print(f"{os.cpu_count()} cores, model coco-nanodet (max batch {detector.max_batch}), {args.streams} streams "
          f"of vtest.avi ({args.seconds:g} s each, 10 fps decoded), {args.detect_fps:g} detect-fps")
    results = {}
    for gating in (False, True):
        results[gating] = r = run(detector, args.streams, args.seconds, args.detect_fps, gating)
        name = "gating on " if gating else "gating off"
        print(f"{name}: {r['capacity']:5.1f} streams sustained | CPU/stream {r['cpu_per_stream'] * 100:5.1f}% "
              f"of a core | detect calls {int(r['detected'])}/{int(r['sampled'])} sampled frames, "
              f"{int(r['saved'])} saved ({r['saved'] / max(1, r['sampled']):.0%}) | wall {r['wall_s']:.1f} s, "
              f"{r['detect_fps_achieved']:.0f} detections/s, {int(r['events'])} events")
    off, on = results[False], results[True]
    print(f"ratios gating on/off: capacity x{on['capacity'] / off['capacity']:.2f}, CPU per stream "
          f"x{on['cpu_per_stream'] / off['cpu_per_stream']:.2f}, detect calls x{on['detected'] / off['detected']:.2f}")
    target = 16
    verdict = "meets" if on["capacity"] >= target else "misses"
    print(f"target >= {target} streams at {args.detect_fps:g} detect-fps with gating: {verdict} "
          f"({on['capacity']:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
