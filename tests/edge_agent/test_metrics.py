"""Health figures after a short replay, the same figures over a real Prometheus HTTP endpoint, and the
CameraHealth list heartbeats carry."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.config import parse_camera_config
from edge_agent.ingest import FileReplay
from edge_agent.metrics import EdgeMetrics, serve_prometheus
from edge_agent.pipeline import Pipeline
from edge_agent.sinks import MemorySink
from protocol.messages import CameraHealth
from tests.delivery_support import free_port
from tests.edge_agent.edge_fakes import ScriptedDetector

FPS, SECONDS = 10, 4
CAR = (100.0, 100.0, 160.0, 150.0)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "short.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (320, 240))
    rng = np.random.default_rng(0)
    for _ in range(FPS * SECONDS):
        writer.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    writer.release()
    return path


def camera(cid: str, video: Path) -> object:
    return parse_camera_config({
        "id": cid, "source": str(video), "timezone": "UTC", "detect_fps": 2, "motion": {"enabled": False},
        "evidence": {"clip": False},
        "zones": [{"id": "np", "kind": "no_parking", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
        "rules": [{"class_id": "illegal_car_parking", "zones": ["np"], "params": {"min_dwell_s": 1}}]})


def replay_two_cameras(video: Path) -> tuple[EdgeMetrics, ScriptedDetector]:
    metrics, detector = EdgeMetrics(), ScriptedDetector([("car", CAR)])
    pipe = Pipeline([camera("a", video), camera("b", video)], detector, MemorySink(), device_id="box",
                    metrics=metrics)
    pipe.run_replays({c: FileReplay(c, video, sample_fps=2, start_time=1_780_000_000.0) for c in ("a", "b")})
    return metrics, detector


def test_figures_after_a_short_replay(video: Path) -> None:
    metrics, detector = replay_two_cameras(video)
    samples = FileReplay("x", video, sample_fps=2).expected_samples()
    assert samples == 2 * SECONDS
    assert detector.images == 2 * samples and detector.calls == samples  # both cameras in one batch per tick
    for cam in metrics.cameras():
        assert cam.frames_sampled == samples and cam.detect_frames == samples
        assert cam.ingest.frames_decoded == FPS * SECONDS
        assert cam.skipped_frames() == FPS * SECONDS - samples  # decoded, never detected
        assert cam.inference_ms > 0
        assert cam.events == 1 and cam.pending_events == 0  # opened; the car never leaves
    health = metrics.health()
    assert [h.camera_id for h in health] == ["a", "b"]
    assert all(isinstance(h, CameraHealth) for h in health)
    assert health[0].skipped_frames == FPS * SECONDS - samples and health[0].reconnects == 0
    assert not health[0].online  # the file is over


def test_prometheus_endpoint_over_http(video: Path) -> None:
    metrics, _ = replay_two_cameras(video)
    port = free_port()
    server = serve_prometheus(metrics, port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = resp.read().decode()
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    values = {(s.name, s.labels.get("camera")): s.value
              for fam in text_string_to_metric_families(text) for s in fam.samples}
    samples = 2 * SECONDS
    for cam in ("a", "b"):
        assert values[("cityeye_camera_detect_frames_total", cam)] == samples
        assert values[("cityeye_camera_skipped_frames_total", cam)] == FPS * SECONDS - samples
        assert values[("cityeye_camera_events_total", cam)] == 1
        assert values[("cityeye_camera_inference_ms", cam)] > 0
        assert values[("cityeye_camera_online", cam)] == 0


def test_live_health_shows_decode_and_detect_rates(video: Path) -> None:
    """A file played at real speed: mid-run the camera is online, decoding ~10 fps and detecting ~2."""
    metrics = EdgeMetrics()
    pipe = Pipeline([camera("live", video)], ScriptedDetector([("car", CAR)]), MemorySink(), device_id="box",
                    metrics=metrics)
    stop = threading.Event()
    runner = threading.Thread(target=pipe.run_live, args=(stop,))
    runner.start()
    try:
        time.sleep(0.5)
        metrics.health()  # the rate meters start counting at the first look
        time.sleep(2.0)
        (h,) = metrics.health()
    finally:
        runner.join(10)
        stop.set()
    assert not runner.is_alive()  # the file ended and so did the run
    assert h.online
    assert h.decode_fps == pytest.approx(FPS, rel=0.3)
    assert h.detect_fps == pytest.approx(2, rel=0.4)


def test_delivery_figures_on_the_endpoint(tmp_path: Path) -> None:
    """The outbox's spool and ack counts are scraped beside the camera figures."""
    from edge_agent.deliver import Outbox, OutboxConfig
    from hub.devices.enrol import enroll_device
    from hub.storage.store import Store
    from tests.delivery_support import make_event, small_jpeg

    store = Store.open(None, tmp_path / "hub")
    bundle = enroll_device(store, tmp_path / "hub", "box-m", f"tcp://127.0.0.1:{free_port()}")
    store.close()
    outbox = Outbox(bundle, OutboxConfig(spool_dir=tmp_path / "spool"))  # never started: events stay spooled
    for n in range(3):
        outbox.submit(*make_event("box-m", n, small_jpeg(n)))
    metrics = EdgeMetrics()
    metrics.delivery = outbox.metrics
    port = free_port()
    server = serve_prometheus(metrics, port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    values = {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert values["cityeye_delivery_spool_events"] == 3
    assert values["cityeye_delivery_spool_bytes"] > 0
    assert values["cityeye_delivery_acked_total"] == 0
