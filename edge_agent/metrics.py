"""Per-camera health figures: decode fps, detect fps, skipped frames, inference ms, reconnects, queues,
whether the source is online or stalled, how old its newest frame is and which clock its frame times
come from (the camera's RTCP sender reports, the stream position, decode time, a file's timeline).

Counters live in plain `CameraMetrics` objects that the pipeline updates; a Prometheus collector and
`health()` (protocol `CameraHealth` for heartbeats) read the same objects, so the two never disagree.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from edge_agent.ingest import IngestStats, SourceState
from protocol.messages import CameraHealth

RATE_WINDOW_S = 10.0


class RateMeter:
    """Events per second over the last `window_s` seconds of a monotonically growing counter."""

    def __init__(self, window_s: float = RATE_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def rate(self, count: int) -> float:
        now = self.clock()
        self._samples.append((now, count))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()
        t0, c0 = self._samples[0]
        return (count - c0) / (now - t0) if now > t0 else 0.0


@dataclass
class CameraMetrics:
    camera_id: str
    ingest: IngestStats = field(default_factory=IngestStats)
    frames_sampled: int = 0  # frames the pipeline looked at
    detect_frames: int = 0  # frames the detector ran on
    gate_skipped: int = 0  # sampled frames motion gating spared the detector
    inference_ms: float = 0.0  # moving average per frame (batched calls split evenly)
    events: int = 0
    pending_events: int = 0  # events waiting for their clip's post-roll
    queue_depth: int = 0  # frames decoded but not yet processed
    last_frame_ts: float | None = None  # wall time of the newest frame sampled
    config_version: int = 0  # the hub config version it runs (0: its local YAML)
    reference_retakes: int = 0  # change references re-taken because the hub verified a case clear
    change_rejected: int = 0  # change regions a confirmer (a state head) turned down
    _decode_rate: RateMeter = field(default_factory=RateMeter, repr=False)
    _detect_rate: RateMeter = field(default_factory=RateMeter, repr=False)

    def count_change(self, retakes: int, rejected: int) -> None:
        self.reference_retakes += retakes
        self.change_rejected += rejected

    def record_inference(self, ms_per_frame: float) -> None:
        self.inference_ms = ms_per_frame if self.inference_ms == 0 else 0.9 * self.inference_ms + 0.1 * ms_per_frame

    def decode_fps(self) -> float:
        return self._decode_rate.rate(self.ingest.frames_decoded)

    def detect_fps(self) -> float:
        return self._detect_rate.rate(self.detect_frames)

    def skipped_frames(self) -> int:
        """Decoded frames that never reached the detector: dropped for latency, sampling or gating."""
        return self.ingest.frames_dropped + self.gate_skipped

    def stalled(self) -> bool:
        """Connected, but no frame for stall_s (the reader says so, or its newest frame is that old)."""
        ingest = self.ingest
        if ingest.state == SourceState.STALLED:
            return True
        return ingest.state == SourceState.ONLINE and not ingest.online

    def health(self) -> CameraHealth:
        age, skew = self.ingest.frame_age_s(), self.ingest.clock_skew_s
        error = self.ingest.last_error
        if self.stalled() and not error:
            error = f"stalled: no frame for {self.ingest.stall_s:g} s"
        return CameraHealth(
            camera_id=self.camera_id, online=self.ingest.online, decode_fps=round(self.decode_fps(), 2),
            detect_fps=round(self.detect_fps(), 2), skipped_frames=self.skipped_frames(),
            inference_ms=round(self.inference_ms, 2), reconnects=self.ingest.reconnects,
            queue_depth=self.queue_depth + self.pending_events, last_error=error[:500] if error else None,
            stalled=self.stalled(), frame_age_s=None if age is None else round(age, 3),
            last_frame_at=None if self.last_frame_ts is None else datetime.fromtimestamp(self.last_frame_ts, UTC),
            dropped_frames=self.ingest.frames_dropped, config_version=self.config_version,
            clock=self.ingest.clock, clock_skew_s=None if skew is None else round(skew, 3))


class EdgeMetrics:
    """All cameras of one agent."""

    def __init__(self) -> None:
        self._cameras: dict[str, CameraMetrics] = {}
        self._lock = threading.Lock()
        # flat delivery figures (Outbox.metrics): names ending in _total are counters, the rest gauges
        self.delivery: Callable[[], Mapping[str, float]] | None = None

    def camera(self, camera_id: str) -> CameraMetrics:
        with self._lock:
            return self._cameras.setdefault(camera_id, CameraMetrics(camera_id))

    def cameras(self) -> list[CameraMetrics]:
        with self._lock:
            return list(self._cameras.values())

    def health(self) -> list[CameraHealth]:
        """The figures for a heartbeat's `cameras` list."""
        return [c.health() for c in self.cameras()]

class PrometheusCollector:
    """Exposes EdgeMetrics at scrape time (register on a prometheus_client CollectorRegistry)."""

    def __init__(self, metrics: EdgeMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        label = ["camera"]
        gauges = {
            "decode_fps": GaugeMetricFamily("cityeye_camera_decode_fps", "frames decoded per second", labels=label),
            "detect_fps": GaugeMetricFamily("cityeye_camera_detect_fps", "frames detected per second", labels=label),
            "inference_ms": GaugeMetricFamily("cityeye_camera_inference_ms", "detector ms per frame",
                                              labels=label),
            "queue": GaugeMetricFamily("cityeye_camera_queue_depth", "frames and events waiting", labels=label),
            "online": GaugeMetricFamily("cityeye_camera_online", "1 if frames are flowing", labels=label),
            "stalled": GaugeMetricFamily("cityeye_camera_stalled", "1 if connected but no frame for stall_s",
                                         labels=label),
            "frame_age": GaugeMetricFamily("cityeye_camera_frame_age_seconds",
                                           "age of the newest frame (frame time to now)", labels=label),
            "last_frame": GaugeMetricFamily("cityeye_camera_last_frame_timestamp_seconds",
                                            "wall time of the newest frame sampled", labels=label),
            "config": GaugeMetricFamily("cityeye_camera_config_version", "hub config version it runs (0: local)",
                                        labels=label),
            "clock": GaugeMetricFamily("cityeye_camera_clock", "1 for the clock its frame times come from: "
                                       "rtcp-sr, stream, decode or file", labels=[*label, "clock"]),
            "skew": GaugeMetricFamily("cityeye_camera_clock_skew_seconds", "RTSP with sender reports: our arrival "
                                      "time minus the camera's SR time, at its least (clock offset + delay)",
                                      labels=label),
        }
        counters = {
            "skipped": CounterMetricFamily("cityeye_camera_skipped_frames", "frames not detected", labels=label),
            "detected": CounterMetricFamily("cityeye_camera_detect_frames", "frames detected", labels=label),
            "gated": CounterMetricFamily("cityeye_camera_gate_skipped_frames", "frames spared by motion gating",
                                         labels=label),
            "reconnects": CounterMetricFamily("cityeye_camera_reconnects", "source reopenings", labels=label),
            "events": CounterMetricFamily("cityeye_camera_events", "problem events emitted", labels=label),
            "stale": CounterMetricFamily("cityeye_camera_stale_frames",
                                         "frames older than max_frame_age_s, dropped", labels=label),
            "stalls": CounterMetricFamily("cityeye_camera_stalls", "times no frame came for stall_s", labels=label),
            "dropped": CounterMetricFamily("cityeye_camera_dropped_frames", "decoded frames replaced unread",
                                           labels=label),
            "retakes": CounterMetricFamily("cityeye_camera_reference_retakes",
                                           "change references re-taken after a case was verified clear",
                                           labels=label),
            "rejected": CounterMetricFamily("cityeye_camera_change_rejected",
                                            "change regions a confirmer turned down", labels=label),
        }
        for cam in self.metrics.cameras():
            h = cam.health()
            cid = [cam.camera_id]
            gauges["decode_fps"].add_metric(cid, h.decode_fps)
            gauges["detect_fps"].add_metric(cid, h.detect_fps)
            gauges["inference_ms"].add_metric(cid, h.inference_ms)
            gauges["queue"].add_metric(cid, h.queue_depth)
            gauges["online"].add_metric(cid, 1.0 if h.online else 0.0)
            gauges["stalled"].add_metric(cid, 1.0 if h.stalled else 0.0)
            if h.frame_age_s is not None:
                gauges["frame_age"].add_metric(cid, h.frame_age_s)
            if cam.last_frame_ts is not None:
                gauges["last_frame"].add_metric(cid, cam.last_frame_ts)
            gauges["config"].add_metric(cid, cam.config_version)
            if h.clock is not None:
                gauges["clock"].add_metric([*cid, h.clock], 1.0)
            if h.clock_skew_s is not None:
                gauges["skew"].add_metric(cid, h.clock_skew_s)
            counters["dropped"].add_metric(cid, h.dropped_frames)
            counters["skipped"].add_metric(cid, h.skipped_frames)
            counters["detected"].add_metric(cid, cam.detect_frames)
            counters["gated"].add_metric(cid, cam.gate_skipped)
            counters["reconnects"].add_metric(cid, h.reconnects)
            counters["events"].add_metric(cid, cam.events)
            counters["stale"].add_metric(cid, cam.ingest.frames_stale)
            counters["stalls"].add_metric(cid, cam.ingest.stalls)
            counters["retakes"].add_metric(cid, cam.reference_retakes)
            counters["rejected"].add_metric(cid, cam.change_rejected)
        yield from gauges.values()
        yield from counters.values()
        yield from self._delivery()

    def _delivery(self) -> Iterator[object]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        source = self.metrics.delivery
        for name, value in (source() if source else {}).items():
            if name.endswith("_total"):
                yield CounterMetricFamily(f"cityeye_delivery_{name[:-6]}", f"delivery {name[:-6]}", value=value)
            else:
                yield GaugeMetricFamily(f"cityeye_delivery_{name}", f"delivery {name}", value=value)


def serve_prometheus(metrics: EdgeMetrics, port: int, addr: str = "127.0.0.1") -> object:
    """Start the /metrics HTTP endpoint on its own registry; returns the server (call .shutdown())."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(PrometheusCollector(metrics))  # type: ignore[arg-type]  # a Collector by its collect(), not by class
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server
