"""Fleet health on the hub comes from the agents' heartbeats and says what the agent's own metrics say:
a real Outbox heartbeats over CURVE into a real ingest loop; GET /fleet is compared with the agent's
Prometheus exposition of the same EdgeMetrics."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from edge_agent.deliver import Outbox, OutboxConfig
from edge_agent.ingest import SourceState
from edge_agent.metrics import EdgeMetrics, PrometheusCollector
from hub.app import create_app
from hub.auth.tokens import create_token
from hub.cases.lifecycle import Role
from hub.devices.enrol import enroll_device
from hub.ingest.config import IngestConfig
from hub.ingest.loop import IngestLoop, start_in_thread
from hub.settings import HubSettings
from hub.storage.store import Store
from protocol.messages import ModelInfo
from tests.delivery_support import free_port


def exposition(metrics: EdgeMetrics) -> dict[tuple[str, str], float]:
    """(sample name, camera label or "") -> value, as a Prometheus scrape would read them."""
    out = {}
    for family in PrometheusCollector(metrics).collect():
        for sample in family.samples:
            out[(sample.name, sample.labels.get("camera", ""))] = sample.value
    return out


def test_fleet_health_matches_the_agents_own_metrics(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    store = Store.open(None, data)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    bundle = enroll_device(store, data, "box-1", endpoint)
    stop = threading.Event()
    loop = IngestLoop(IngestConfig(bind=endpoint, data_dir=data), store, stop)
    assert not start_in_thread(loop, "ingest")

    metrics = EdgeMetrics()
    cam = metrics.camera("gate-3")  # figures a running pipeline would have counted
    cam.ingest.frames_decoded, cam.ingest.frames_dropped, cam.ingest.reconnects = 900, 37, 2
    cam.ingest.state, cam.ingest.last_frame_wall, cam.ingest.stall_s = SourceState.ONLINE, time.time(), 3600.0
    cam.detect_frames, cam.gate_skipped, cam.inference_ms, cam.config_version = 240, 55, 31.25, 4
    cam.last_frame_ts = time.time() - 1.5
    model = ModelInfo(name="coco-nanodet", sha256="ab" * 32)
    outbox = Outbox(bundle, OutboxConfig(spool_dir=tmp_path / "spool", heartbeat_s=0.2), health=metrics.health,
                    agent_version="9.9.9", model=model)
    metrics.delivery = outbox.metrics
    token = create_token(store, "chief", Role.ADMIN)[1]
    app = create_app(HubSettings(data_dir=data, zmq_bind=None), store=store, background=False)
    try:
        with TestClient(app) as client, outbox:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                fleet = client.get("/fleet", headers={"Authorization": f"Bearer {token}"}).json()
                cams = fleet["devices"][0]["cameras"] if fleet["devices"] else []
                if cams and cams[0]["health"]:
                    break
                time.sleep(0.1)
            scraped = exposition(metrics)
    finally:
        stop.set()
        store.close()
    device = fleet["devices"][0]
    health, hb = device["cameras"][0]["health"], device["health"]
    assert device["online"] and device["cameras"][0]["online"]
    assert scraped[("cityeye_camera_online", "gate-3")] == 1.0
    assert health["dropped_frames"] == scraped[("cityeye_camera_dropped_frames_total", "gate-3")] == 37
    assert health["skipped_frames"] == scraped[("cityeye_camera_skipped_frames_total", "gate-3")] == 37 + 55
    assert health["reconnects"] == scraped[("cityeye_camera_reconnects_total", "gate-3")] == 2
    assert health["inference_ms"] == scraped[("cityeye_camera_inference_ms", "gate-3")] == 31.25
    assert health["config_version"] == scraped[("cityeye_camera_config_version", "gate-3")] == 4
    last_frame = scraped[("cityeye_camera_last_frame_timestamp_seconds", "gate-3")]
    from datetime import datetime

    assert abs(datetime.fromisoformat(health["last_frame_at"]).timestamp() - last_frame) < 1e-3
    assert hb["spool_events"] == scraped[("cityeye_delivery_spool_events", "")] == 0
    assert hb["oldest_unsent_at"] is None and scraped[("cityeye_delivery_oldest_unsent_age_s", "")] == -1.0
    assert hb["model"] == {"name": "coco-nanodet", "sha256": "ab" * 32}
    assert device["agent_version"] == "9.9.9" and hb["cpu_percent"] is not None
    assert abs(device["clock_offset_s"]) < 3.0  # same clock; transit and the 1 s heartbeat flush
