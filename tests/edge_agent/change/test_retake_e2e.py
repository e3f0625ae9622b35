"""Done-when of issue 17's retake: a change case verified clear on a real hub makes the real agent re-take
its zone's reference, over the agent's authenticated ZeroMQ link, as a hub-signed push.

The agent (a `cityeye edge run` process) watches a clip of real vtest.avi frames where litter is set down
on the plaza 5 s in and stays; its change rule opens an event, the hub opens a case, a reviewer takes it
through the lifecycle to `verify` (the place is clear now: the litter is accepted as the new normal),
and the hub's ingest link pushes the retake. The test reads the ack on the hub (the retake `accepted`)
and the agent's own Prometheus counter `cityeye_camera_reference_retakes`.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import pytest
import yaml
from sqlalchemy import select

from tests.agent_process import AgentProcess
from tests.edge_agent.change.clips import PLAZA, Scene

pytestmark = pytest.mark.slow


def litter_clip(path: Path, seconds: int = 30) -> Path:
    """vtest.avi's first `seconds` at 10 fps with the litter lying on the plaza from 5 s on (MJPG)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (768, 576))
    for _, image in Scene(litter=(5.0, 1e9)).frames(10, seconds):
        writer.write(image)
    writer.release()
    return path


def test_a_change_case_verified_clear_re_takes_the_agents_reference(tmp_path: Path) -> None:
    from hub.cases.lifecycle import Action, Role
    from hub.cases.transitions import transition
    from hub.devices.enrol import enroll_device
    from hub.fleet import retakes
    from hub.ingest.config import IngestConfig
    from hub.ingest.loop import run_ingest
    from hub.storage import schema
    from hub.storage.store import Store
    from tests.delivery_support import free_port

    data_dir = tmp_path / "hub"
    store = Store.open(None, data_dir)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    stop = threading.Event()
    run_ingest(IngestConfig(bind=endpoint, data_dir=data_dir, device_refresh_s=0.2), store, stop)
    cfg = {
        "id": "plaza-cam", "source": str(litter_clip(tmp_path / "litter.avi")), "loop": True,
        "timezone": "Asia/Shanghai", "detect_fps": 2, "evidence": {"pre_s": 1, "post_s": 1, "clip": False},
        "change": {"learn_s": 3, "learn_samples": 3},
        "zones": [{"id": "plaza", "kind": "plaza", "polygon": PLAZA}],
        "rules": [{"class_id": "exposed_garbage", "zones": ["plaza"], "source": "change",
                   "params": {"min_dwell_s": 4, "clear_after_s": 600, "min_area_frac": 0.004}}],
    }
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump(cfg))
    enroll_device(store, data_dir, "box-plaza", endpoint).save(tmp_path / "box.bundle.json")
    metrics_port = free_port()
    agent = AgentProcess(tmp_path, tmp_path / "cam.yaml", tmp_path / "box.bundle.json",
                         ["--metrics-port", str(metrics_port)])
    wait_for = agent.wait_for

    def litter_case():
        with store.engine.connect() as conn:
            return conn.execute(select(schema.cases).where(schema.cases.c.class_id == "exposed_garbage")).first()

    def retakes_counted() -> float | None:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        found = re.search(r'^cityeye_camera_reference_retakes_total\{camera="plaza-cam"\} ([0-9.]+)', text, re.M)
        return float(found.group(1)) if found else None

    try:
        case = wait_for("change case on the hub", litter_case)
        assert case.zone == "plaza" and case.camera_id == "plaza-cam"
        assert retakes_counted() == 0.0
        with store.engine.connect() as conn:
            photo = conn.execute(select(schema.events.c.payload).where(
                schema.events.c.case_id == case.case_id)).first().payload["media"][0]["sha256"]
        reviewer = {"actor": "reviewer:li", "role": Role.ADMIN}
        for action, extra in ((Action.CONFIRM, {}), (Action.DISPATCH, {"unit": "sanitation"}), (Action.START, {}),
                              (Action.HANDLE, {"note": "litter taken away", "photo_sha256": photo})):
            transition(store, case.case_id, action, **reviewer, **extra)
        assert retakes.retakes_of(store, "plaza-cam") == []  # handled is not verified: nothing yet
        transition(store, case.case_id, Action.VERIFY, **reviewer)
        (queued,) = retakes.retakes_of(store, "plaza-cam")
        assert (queued["zone"], queued["case_id"], queued["device_id"]) == ("plaza", case.case_id, "box-plaza")
        accepted = wait_for("the agent's ack of the retake", lambda: [
            r for r in retakes.retakes_of(store, "plaza-cam") if r["status"] == "accepted"], timeout=30)
        assert accepted[0]["version"] == 1 and accepted[0]["error"] is None
        assert wait_for("the retake in the agent's metrics", lambda: retakes_counted() == 1.0, timeout=15)
        assert "change reference of zone plaza re-taken (retake v1" in agent.log()
    finally:
        agent.stop()
        stop.set()
        time.sleep(0.3)
        store.close()
