"""Edge capacity: how many cameras one box sustains at 2 detect-fps, and what bounds it.

Each camera is vtest.avi as the main stream (768x576) with a low-resolution sub-stream made from it
(default 384x288 H.264, as a camera's analytics stream): detection, motion gating, tracking and
rules run on the sub-stream, the main stream is only demuxed into the evidence ring and decoded when
a rule fires. N cameras replay interleaved as fast as the box goes (one batched detector call per
tick; every sub-stream frame decoded as a live camera's would be). Capacity = N x video seconds /
wall seconds: the number of real-time cameras this box keeps up with.

In the same run it measures the ceilings that bound it, so days and boxes compare:
- decode-only: the same N cameras decoded and demuxed on the same threads, nothing else;
- detect-only: the detector's frames/s on sub-stream frames, one session on all cores vs one
  single-threaded session per core (the faster is the one the pipeline runs with, unless --threads);
the combined bound (both share the cores: 1 / (1/decode + detect calls per camera-second / detect
rate)) and the ratio reached = capacity with gating / that bound.

`--feature NAME=YAML` adds a run with that camera-config fragment merged in (e.g. a plate reader or
change rules), reported beside the run without it: `--feature 'plates={enabled: true}'`.

    .venv/bin/python bench/edge.py [--streams 32] [--seconds 30] [--detect-fps 2] [--detect-size 384x288]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.config import parse_camera_config
from edge_agent.detect import Detector
from edge_agent.ingest import FileReplay
from edge_agent.pipeline import Pipeline, detection_floor
from edge_agent.prefetch import Prefetch
from edge_agent.sinks import MemorySink
from edge_agent.streams import DetectStream, MainStreamFile
from edge_agent.substream import make_substream

VTEST = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "video" / "vtest.avi"
TARGET = 32


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def thread_cpu_s(native_id: int | None) -> float:
    """CPU seconds one thread of this process has used (Linux /proc); 0 where unknown."""
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def camera(i: int, args: argparse.Namespace, gating: bool, sub: Path | None, extra: dict[str, Any]):
    data = {
        "id": f"cam{i:02d}", "source": str(VTEST), "timezone": "Asia/Shanghai", "detect_fps": args.detect_fps,
        "start_time": "2026-03-02T10:00:00", "motion": {"enabled": gating},
        "zones": [{"id": "np", "kind": "no_parking", "polygon": [[0.8, 0.03], [1, 0.03], [1, 0.22], [0.8, 0.22]]}],
        "rules": [{"class_id": "illegal_car_parking", "zones": ["np"], "params": {"min_dwell_s": 20}}],
        **({"detect_source": str(sub)} if sub else {}),
    }
    return parse_camera_config(merge(data, extra))


def sources(configs, seconds: float, sub: Path | None) -> dict[str, FileReplay | DetectStream]:
    out: dict[str, FileReplay | DetectStream] = {}
    for c in configs:
        start = c.start_epoch() or 0.0
        if sub is None:
            out[c.id] = FileReplay(c.id, VTEST, sample_fps=c.sample_fps(), start_time=start, end_s=seconds)
        else:
            main = MainStreamFile(VTEST, keep_s=c.main_stream_keep_s(), start_time=start)
            out[c.id] = DetectStream(c.id, sub, sample_fps=c.sample_fps(), start_time=start, end_s=seconds,
                                     main=main)
    return out


def run(detector: Detector, args: argparse.Namespace, gating: bool, sub: Path | None,
        extra: dict[str, Any] | None = None) -> dict[str, float]:
    configs = [camera(i, args, gating, sub, extra or {}) for i in range(args.streams)]
    sink = MemorySink()
    pipeline = Pipeline(configs, detector, sink, device_id="bench")
    replays = sources(configs, args.seconds, sub)
    video_s = min(args.seconds, next(iter(replays.values())).duration_s)
    split = CpuSplit(detector)
    cpu0, t0, main0 = cpu_s(), time.perf_counter(), time.thread_time()
    with split:
        pipeline.run_replays(replays)
    wall, cpu = time.perf_counter() - t0, cpu_s() - cpu0
    pipeline_cpu = time.thread_time() - main0
    evidence_cpu = sum(thread_cpu_s(t.native_id) for t in pipeline.evidence_worker.threads)
    cams = [pipeline.cameras[c.id].metrics for c in configs]
    sampled = sum(m.frames_sampled for m in cams)
    detected = sum(m.detect_frames for m in cams)
    stream_s = args.streams * video_s
    stages = {"pipeline thread": pipeline_cpu, "detector sessions": split.detect_s, "decode threads": split.decode_s,
              "evidence threads": evidence_cpu}
    stages["other"] = max(0.0, cpu - sum(stages.values()))
    return {"wall_s": wall, "cpu_s": cpu, "video_s": video_s, "capacity": args.streams * video_s / wall,
            "cpu_per_stream": cpu / stream_s, "sampled": sampled, "detected": detected, "busy": cpu / wall,
            "saved": sampled - detected, "events": len(sink.items), "detect_fps_achieved": detected / wall,
            "detect_per_stream_s": detected / stream_s, "evidence_cpu_s": evidence_cpu,
            "hot_cpu_per_stream": (cpu - evidence_cpu) / stream_s,
            "stages": {k: v / stream_s for k, v in stages.items()}}


class CpuSplit:
    """CPU seconds of the detector's session threads and of the read-ahead decode threads during a run
    (each thread's own clock, read where its work starts and ends)."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.detect_s = self.decode_s = 0.0
        self._lock = threading.Lock()

    def _add(self, name: str, seconds: float) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + seconds)

    def __enter__(self) -> CpuSplit:
        split, share, run = self, self.detector._detect_share, Prefetch._run

        def timed_share(images: Any, session: Any) -> Any:
            t = time.thread_time()
            try:
                return share(images, session)
            finally:
                split._add("detect_s", time.thread_time() - t)

        def timed_run(prefetch: Any, items: Any) -> None:
            t = time.thread_time()
            try:
                run(prefetch, items)
            finally:
                split._add("decode_s", time.thread_time() - t)

        self.detector._detect_share = timed_share
        self._run = run
        Prefetch._run = timed_run
        return self

    def __exit__(self, *exc: object) -> None:
        del self.detector._detect_share
        Prefetch._run = self._run


def decode_ceiling(args: argparse.Namespace, sub: Path | None) -> dict[str, float]:
    """The pipeline's reading alone: the same sources on the same read-ahead threads, frames dropped."""
    configs = [camera(i, args, True, sub, {}) for i in range(args.streams)]
    replays = sources(configs, args.seconds, sub)
    video_s = min(args.seconds, next(iter(replays.values())).duration_s)
    cpu0, t0 = cpu_s(), time.perf_counter()
    iterators = [Prefetch(src) for src in replays.values()]
    alive = list(iterators)
    while alive:  # round-robin like the pipeline's ticks
        alive = [it for it in alive if next(it, None) is not None]
    wall, cpu = time.perf_counter() - t0, cpu_s() - cpu0
    return {"capacity": args.streams * video_s / wall, "cpu_per_stream": cpu / (args.streams * video_s),
            "wall_s": wall}


def detect_ceiling(model: str, frames: list, threads: int, sessions: int, rounds: int = 3,
                   native: bool = False) -> tuple[float, float]:
    """Detector frames/s and CPU ms per frame: `sessions` sessions of `threads` intra-op threads each,
    each on its own thread taking full batches, as the pipeline's detector does."""
    detectors = [Detector.load(model, threads=threads, native_input=native) for _ in range(sessions)]
    batch = detectors[0].max_batch
    work = [frames[i:i + batch] for i in range(0, len(frames) - batch + 1, batch)]

    def worker(k: int) -> None:
        for chunk in work[k::sessions]:
            detectors[k].detect(chunk)

    def once() -> tuple[float, float]:
        threads_ = [threading.Thread(target=worker, args=(k,)) for k in range(sessions)]
        cpu0, t0 = cpu_s(), time.perf_counter()
        for t in threads_:
            t.start()
        for t in threads_:
            t.join()
        n = sum(len(c) for c in work)
        return n / (time.perf_counter() - t0), (cpu_s() - cpu0) * 1000 / n

    once()  # warm up
    return max(once() for _ in range(rounds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=TARGET)
    parser.add_argument("--model", default="coco-nanodet",
                        help="cached model name or .onnx path, e.g. coco-nanodet-int8 (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of the clip to replay per stream")
    parser.add_argument("--detect-fps", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=None, help="detector threads (default: all cores)")
    parser.add_argument("--detect-size", default="384x288",
                        help="the sub-stream's size WxH; 'main' detects on the main stream itself (no sub-stream)")
    parser.add_argument("--detect-input", choices=("model", "native"), default="model",
                        help="the cameras' detect_input: model stretches to 416x416, native keeps the frame's aspect")
    parser.add_argument("--feature", action="append", default=[], metavar="NAME=YAML",
                        help="also run with this camera-config fragment merged in, e.g. 'plates={enabled: true}'")
    parser.add_argument("--no-gating-off", action="store_true", help="skip the run without motion gating")
    args = parser.parse_args()
    if not VTEST.is_file():
        print(f"{VTEST} is absent: nothing to benchmark on")
        return 1
    features = {}
    for item in args.feature:
        name, sep, text = item.partition("=")
        value = yaml.safe_load(text) if sep else None
        if not isinstance(value, dict):
            parser.error(f"--feature {item!r}: want NAME=YAML with a mapping, e.g. 'plates={{enabled: true}}'")
        features[name] = value
    cores = os.cpu_count() or 1
    threads = args.threads or cores
    with tempfile.TemporaryDirectory() as tmp:
        sub = None
        if args.detect_size != "main":
            w, h = (int(v) for v in args.detect_size.lower().split("x"))
            sub = make_substream(VTEST, Path(tmp) / "sub.mp4", w, h)
        native = args.detect_input == "native"
        floor = detection_floor([camera(0, args, True, sub, {})])  # as the agent loads it
        detector = Detector.load(args.model, threads=args.threads, native_input=native, floor=floor)
        shown = f"{args.detect_size} H.264 sub-stream + 768x576 main stream" if sub else "768x576 stream only"
        print(f"{cores} cores, load average {os.getloadavg()[0]:.1f} at start, model {args.model} (max batch "
              f"{detector.max_batch}), {args.streams} streams of vtest.avi ({args.seconds:g} s each, {shown}), "
              f"{args.detect_fps:g} detect-fps, detect_input {args.detect_input}")
        dec = decode_ceiling(args, sub)
        print(f"decode-only ceiling: {dec['capacity']:6.1f} streams | CPU/stream {dec['cpu_per_stream'] * 100:4.1f}% "
              f"of a core (every detect-stream frame decoded, sampled ones converted, main stream demuxed)")
        frames = [f.image for f in DetectStream("c", sub or VTEST, sample_fps=2)][:64] if sub else \
            [f.image for f in FileReplay("c", VTEST, sample_fps=2)][:64]
        (one, one_ms), (per_core, per_core_ms) = (detect_ceiling(args.model, frames, threads, 1, native=native),
                                                  detect_ceiling(args.model, frames, 1, cores, native=native))
        best = max(one, per_core)
        print(f"detect-only ceiling: {best:6.1f} frames/s (1 session x {threads} threads: {one:.1f}; {cores} "
              f"sessions x 1 thread: {per_core:.1f}) | CPU per frame {one_ms:.0f} / {per_core_ms:.0f} ms")
        if per_core > one and args.threads is None:  # the pipeline runs on the faster arrangement
            detector = Detector.load(args.model, threads=1, sessions=cores, native_input=native, floor=floor)
        print(f"pipeline detector: {len(detector.sessions)} session(s) x "
              f"{1 if len(detector.sessions) > 1 else threads} thread(s)")
        results = {}
        for gating in (False, True):
            if not gating and args.no_gating_off:
                continue
            results[gating] = r = run(detector, args, gating, sub)
            name = "gating on " if gating else "gating off"
            print(f"{name}: {r['capacity']:5.1f} streams sustained | CPU/stream {r['cpu_per_stream'] * 100:5.1f}% "
                  f"of a core | cores busy {r['busy']:.2f} of {cores} | detect calls {int(r['detected'])}/"
                  f"{int(r['sampled'])} sampled frames, {int(r['saved'])} saved "
                  f"({r['saved'] / max(1, r['sampled']):.0%}) | wall {r['wall_s']:.1f} s, "
                  f"{r['detect_fps_achieved']:.0f} detections/s, {int(r['events'])} events")
            print("   CPU per stream by stage: " + ", ".join(f"{k} {v * 100:.2f}%" for k, v in r["stages"].items()))
        on = results[True]
        print(f"CPU-bound estimate with gating: {cores} cores / {on['cpu_per_stream'] * 100:.1f}% of a core per "
              f"stream = {cores / on['cpu_per_stream']:.1f} streams if this run had the box to itself; evidence "
              f"worker {on['evidence_cpu_s'] * 1000 / max(1, on['events']):.0f} ms CPU per event (main-stream decode "
              f"from its keyframe, stills, clip), hot path {on['hot_cpu_per_stream'] * 100:.1f}% of a core per stream")
        if False in results:
            off = results[False]
            print(f"ratios gating on/off: capacity x{on['capacity'] / off['capacity']:.2f}, CPU per stream "
                  f"x{on['cpu_per_stream'] / off['cpu_per_stream']:.2f}, detect calls "
                  f"x{on['detected'] / off['detected']:.2f}")
        detect_streams = best / max(on["detect_per_stream_s"], 1e-9)
        bound = 1.0 / (1.0 / dec["capacity"] + 1.0 / detect_streams)
        print(f"bound with gating: decode {dec['capacity']:.1f} streams, detect {best:.1f} frames/s / "
              f"{on['detect_per_stream_s']:.2f} calls per stream-second = {detect_streams:.1f} streams; both on the "
              f"same cores: {bound:.1f} streams; ratio reached: {on['capacity'] / bound:.2f}")
        for name, extra in features.items():
            r = run(detector, args, True, sub, extra)
            print(f"feature {name}: {r['capacity']:5.1f} streams sustained with it, {on['capacity']:.1f} without "
                  f"(x{r['capacity'] / on['capacity']:.2f}) | CPU/stream {r['cpu_per_stream'] * 100:5.1f}% of a core "
                  f"| {int(r['events'])} events")
    verdict = "meets" if on["capacity"] >= TARGET else "misses"
    print(f"target >= {TARGET} streams at {args.detect_fps:g} detect-fps with gating: {verdict} ({on['capacity']:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
