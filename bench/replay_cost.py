"""What the rule-cost benches (change.py, zone_state.py) share: N vtest.avi cameras replayed through the
real pipeline, with the CPU and wall it took and the time spent inside one method being measured."""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_agent.config import CameraConfig
from edge_agent.detect import Detector
from edge_agent.ingest import FileReplay
from edge_agent.pipeline import Pipeline
from edge_agent.sinks import MemorySink

VTEST = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "video" / "vtest.avi"


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class MethodTimer:
    """Totals the wall time and the calls of `cls.name` inside the `with` block (the method is put back
    on exit): how much of a run one stage took, without touching the stage's code."""

    def __init__(self, cls: type, name: str) -> None:
        self.cls, self.name = cls, name
        self.total_s, self.calls = 0.0, 0

    def __enter__(self) -> MethodTimer:
        self.original = original = getattr(self.cls, self.name)

        def timed(obj: Any, *args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(obj, *args, **kwargs)
            finally:
                self.total_s += time.perf_counter() - t
                self.calls += 1

        setattr(self.cls, self.name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(self.cls, self.name, self.original)


def replay(configs: Sequence[CameraConfig], detector: Detector, seconds: float, timer: MethodTimer,
           **pipeline_options: Any) -> tuple[Pipeline, dict[str, float]]:
    """Replay `seconds` of vtest.avi for every camera, interleaved as from live cameras: the pipeline
    (for per-camera counters) and capacity, CPU per stream, wall, detections and the timed method's share."""
    pipeline = Pipeline(list(configs), detector, MemorySink(), device_id="bench", ground=None, **pipeline_options)
    sources = {c.id: FileReplay(c.id, VTEST, sample_fps=c.sample_fps(), start_time=c.start_epoch() or 0.0,
                                end_s=seconds) for c in configs}
    video_s = next(iter(sources.values())).duration_s
    with timer:
        cpu0, t0 = cpu_s(), time.perf_counter()
        pipeline.run_replays(sources)
        wall, cpu = time.perf_counter() - t0, cpu_s() - cpu0
    streams = len(configs)
    return pipeline, {"capacity": streams * video_s / wall, "cpu_per_stream": cpu / (streams * video_s),
                      "wall_s": wall, "timed_s": timer.total_s, "timed_calls": timer.calls,
                      "detected": sum(rt.metrics.detect_frames for rt in pipeline.cameras.values())}
