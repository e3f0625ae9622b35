"""A full detector (15 MB ONNX) rolled out over HTTP: announced in the hub-signed push, downloaded by a
real agent process with its device key from a real served hub, verified, swapped in; events carry the
new version. A tampered file is refused and the canary is rolled back; strangers get nothing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from cityeye.cli import main
from edge_agent.model_fetch import ModelFetcher
from hub.app import create_app
from hub.devices.enrol import enroll_device, revoke_device
from hub.devices.hubkeys import HubSigningKey
from hub.ingest.config import IngestConfig
from hub.ingest.loop import run_ingest
from hub.releases import pushes, registry
from hub.releases.rollout import RolloutPolicy
from hub.settings import HubSettings
from hub.storage import schema
from hub.storage.db import utcnow
from hub.storage.store import Store
from models.cache import cached
from protocol.device_auth import sign_request
from protocol.manifest import Signer, generate_signing_key
from protocol.model_release import ReleaseError
from tests.agent_process import AgentProcess
from tests.conftest import shared_file
from tests.delivery_support import free_port
from tests.hub.served import serve_app
from tests.models.test_teach_vtest import short_clip

pytestmark = pytest.mark.slow


def repackaged(tmp: Path, name: str) -> bytes:
    """coco-nanodet as a new release: the same graph, its manifest embedded under another name (new sha256)."""
    if cached("coco-nanodet") is None:
        pytest.fail("the default model is not cached: run ./setup.sh (it pulls coco-nanodet)")
    assert main(["models", "package", "coco-nanodet", "--name", name, "--out", str(tmp / f"{name}.onnx")]) == 0
    return (tmp / f"{name}.onnx").read_bytes()


@contextmanager
def running_hub(tmp_path: Path, tls: tuple[Path, Path] | None = None) -> Iterator[dict]:
    """A served hub (API over HTTP, or HTTPS with `tls` = (cert file, key file)) and its ZeroMQ ingest."""
    data_dir = tmp_path / "hub"
    store = Store.open(None, data_dir)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    stop = threading.Event()
    run_ingest(IngestConfig(bind=endpoint, data_dir=data_dir, device_refresh_s=0.2), store, stop)
    app = create_app(HubSettings(data_dir=data_dir, zmq_bind=None), store=store, background=False)
    try:
        with serve_app(app, tls=tls) as base:
            yield {"store": store, "endpoint": endpoint, "base": base, "data_dir": data_dir}
    finally:
        stop.set()
        time.sleep(0.3)
        store.close()


@pytest.fixture
def hub(tmp_path):
    with running_hub(tmp_path) as served:
        yield served


def walkers_config(clip: Path) -> dict:
    """People on the whole frame for 2 s: an event a few seconds after start, whatever model runs."""
    return {"id": "vtest", "source": str(clip), "timezone": "Asia/Shanghai", "detect_fps": 2, "loop": True,
            "motion": {"enabled": False}, "model": "coco-nanodet",
            "zones": [{"id": "all", "kind": "water", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
            "rules": [{"class_id": "water_area_order", "zones": ["all"], "params": {"min_dwell_s": 2}}],
            "evidence": {"pre_s": 1, "post_s": 1, "clip": False}}


class Agent:
    """A real `cityeye edge run` process delivering one looping camera to the hub, and what the hub saw of it."""

    def __init__(self, hub: dict, tmp_path: Path, *, api_ca: str | None = None) -> None:
        self.store, self.tmp = hub["store"], tmp_path
        clip = short_clip(shared_file("video/vtest.avi"), tmp_path / "vtest-10s.avi", 10)
        (tmp_path / "cam.yaml").write_text(yaml.safe_dump(walkers_config(clip)))
        enroll_device(self.store, hub["data_dir"], "box-dl", hub["endpoint"], api_url=hub["base"],
                      api_ca=api_ca).save(tmp_path / "box.json")
        self.installed = tmp_path / "xdg" / "cityeye" / "hub-model" / "box-dl" / "releases"
        self.process = AgentProcess(tmp_path, tmp_path / "cam.yaml", tmp_path / "box.json")
        self.log_path = self.process.log_path

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 90.0) -> Any:
        return self.process.wait_for(what, check, timeout)

    def camera_seen(self) -> Any:
        with self.store.engine.connect() as conn:
            return conn.execute(select(schema.cameras.c.camera_id).where(schema.cameras.c.camera_id == "vtest")).first()

    def models_seen(self) -> list[tuple[dict, Any]]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(schema.events.c.payload, schema.events.c.received_at)).all()
        return [(r.payload.get("model") or {}, r.received_at) for r in rows]

    def push_of(self, release_id: int) -> list[dict]:
        return [p for p in pushes.state(self.store) if p["release_id"] == release_id and p["status"] != "pending"
                and p["status"] != "sent"]

    def events_from(self, name: str, after: float = 0.0) -> list[dict]:
        return [m for m, at in self.models_seen() if m.get("name") == name and at.timestamp() > after]

    def stop(self) -> None:
        self.process.stop()


@contextmanager
def running_agent(hub: dict, tmp_path: Path, *, api_ca: str | None = None) -> Iterator[Agent]:
    """An agent that has sent its first heartbeat; stopped on exit."""
    agent = Agent(hub, tmp_path, api_ca=api_ca)
    try:
        agent.wait_for("heartbeat from the camera", agent.camera_seen)
        yield agent
    finally:
        agent.stop()


def register_v2(hub: dict, agent: Agent) -> tuple[Any, bytes]:
    """A repackaged detector registered as a new release, far over what travels inline."""
    content = repackaged(agent.tmp, "coco-nanodet-v2")
    assert len(content) > 5 * 1024**2
    key = HubSigningKey.load_or_create(hub["data_dir"])
    return registry.register(hub["store"], content, name="coco-nanodet-v2", kind="onnx", actor="admin:test",
                             key=key), content


def test_a_detector_is_downloaded_by_a_running_agent_and_a_tampered_one_refused(hub, tmp_path):
    store = hub["store"]
    with running_agent(hub, tmp_path) as agent:
        v2, content = register_v2(hub, agent)
        registry.deploy(store, v2.release_id, ["vtest"], "admin:test")
        (answer,) = agent.wait_for("answer to the v2 push", lambda: agent.push_of(v2.release_id))
        assert answer["status"] == "accepted", answer
        tagged = agent.wait_for("event from v2", lambda: agent.events_from("coco-nanodet-v2"))
        assert tagged[0]["sha256"] == v2.sha256
        assert (agent.installed / f"{v2.sha256}.onnx").read_bytes() == content

        # v3's file is altered on the hub after it was signed: the agent must refuse it and keep v2
        v3_content = repackaged(tmp_path, "coco-nanodet-v3")
        v3 = registry.register(store, v3_content, name="coco-nanodet-v3", kind="onnx", actor="admin:test",
                               key=HubSigningKey.load_or_create(hub["data_dir"]))
        stored = store.evidence_path(v3.sha256)
        os.chmod(stored, 0o644)
        tampered = bytearray(v3_content)
        tampered[len(tampered) // 2] ^= 0xFF
        stored.write_bytes(bytes(tampered))
        started = registry.start_rollout(store, v3.release_id, ["vtest"], "admin:test", rest=[],
                                         policy=RolloutPolicy(min_hours=0))
        (refused,) = agent.wait_for("answer to the v3 push", lambda: agent.push_of(v3.release_id))
        assert refused["status"] == "rejected" and "refused" in refused["error"], refused
        assert not (agent.installed / f"{v3.sha256}.onnx").exists()
        judged = registry.judge(store, started.rollout_id)
        assert judged.verdict.value == "rollback" and "box-dl" in judged.reason
        assert registry.assignments(store)["vtest"] == v2.release_id
        assert any(r["action"] == "rollback" for r in registry.audit_rows(store, started.rollout_id))
        after = time.time() + 1
        agent.wait_for("v2 events after the refusal", lambda: agent.events_from("coco-nanodet-v2", after))
        assert not agent.events_from("coco-nanodet-v3")


def test_the_hub_serves_release_files_only_to_devices_it_pushed_them_to(hub, tmp_path):
    import httpx

    store, base = hub["store"], hub["base"]
    key = HubSigningKey.load_or_create(hub["data_dir"])
    content = os.urandom(300_000)
    release = registry.register(store, content, name="blob", kind="onnx", actor="admin:test", key=key)
    bundle = enroll_device(store, hub["data_dir"], "box-a", hub["endpoint"], api_url=base)
    other = enroll_device(store, hub["data_dir"], "box-b", hub["endpoint"])
    store.write(lambda conn: conn.execute(schema.model_pushes.insert().values(  # as the hub's link would
        device_id="box-a", version=1, release_id=release.release_id, status="sent", created_at=utcnow(),
        created_by="t")))
    path = f"/models/releases/{release.release_id}/file"
    signer = Signer(bundle.sign_secret)

    def get(headers, **extra):
        return httpx.get(base + path, headers={**headers, **extra}, timeout=10)

    ok = get(sign_request(signer, "box-a", "GET", path))
    assert ok.status_code == 200 and ok.content == content
    part = get(sign_request(signer, "box-a", "GET", path), Range="bytes=100000-")
    assert part.status_code == 206 and part.content == content[100000:]  # a broken download resumes
    assert get({}).status_code == 401
    assert get(sign_request(signer, "box-a", "GET", path, at=time.time() - 3600)).status_code == 401
    assert get(sign_request(Signer(generate_signing_key()[0]), "box-a", "GET", path)).status_code == 401
    assert get(sign_request(signer, "box-a", "GET", "/models/releases/999/file")).status_code == 401  # other path
    assert get(sign_request(signer, "box-b", "GET", path)).status_code == 401  # box-a's key is not box-b's
    assert get(sign_request(signer, "stranger", "GET", path)).status_code == 403
    assert get(sign_request(Signer(other.sign_secret), "box-b", "GET", path)).status_code == 404  # never pushed
    # the fetcher resumes a half-written .part file and checks the result
    root = tmp_path / "releases"
    root.mkdir()
    wire = registry.wire_release(store, release)
    (root / f".{release.sha256}.onnx.part").write_bytes(content[:123_456])
    got: list[int] = []
    fetcher = ModelFetcher(base, "box-a", signer, root, on_progress=lambda _r, n: got.append(n))
    assert fetcher.fetch(wire) == content and got[0] > 123_456
    with pytest.raises(ReleaseError, match="refused"):
        fetcher.fetch(wire.model_copy(update={"sha256": "0" * 64}))
    revoke_device(store, "box-a")
    assert get(sign_request(signer, "box-a", "GET", path)).status_code == 403
    with pytest.raises(ReleaseError, match="HTTP 403"):
        ModelFetcher(base, "box-a", signer, root, backoff_s=0).fetch(wire)
