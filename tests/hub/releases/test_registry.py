"""The model registry and staged rollout (hub.releases.registry), through the admin API where a person
would act: register signed releases, canary first, automatic rollback of a canary made worse on
purpose (with its audit row), promotion, manual rollback in one call, precision per model version."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update

from hub.devices.hubkeys import HubSigningKey
from hub.releases import registry
from hub.storage import schema
from protocol.manifest import verify
from protocol.messages import ModelInfo
from tests.hub.hubfactory import ingest, make_event

CAMERAS = ["cam-1", "cam-2", "cam-3"]


def _register(client: Any, tokens: dict, name: str, content: bytes) -> dict:
    r = client.post("/models/releases", headers=tokens["admin"], data={"name": name, "kind": "fewshot",
                    "metrics": '{"traffic_cone": {"ap50": 0.72}}'}, files={"file": ("head.json", content)})
    assert r.status_code == 201, r.text
    return r.json()


def _cases(store, client, tokens, release: dict, camera: str, count: int, voided: int, start: int) -> None:
    """`count` cases from events of `release` on `camera`; a reviewer voids `voided` of them, confirms the rest."""
    for i in range(count):
        event, media = make_event(camera_id=camera, problem_id=f"prob-{start + i:05d}", class_id="work_zone_on_road",
                                  zone=f"z{start + i}", box=(0.1, 0.1, 0.2, 0.2), media_tag=f"{camera}-{start + i}",
                                  at=datetime.now(UTC))  # observed now: after any rollout started
        event = event.model_copy(update={"model": ModelInfo(name=release["name"], sha256=release["sha256"]),
                                         "labels": ["traffic_cone"]})
        case_id = ingest(store, event, media, seq=start + i).case_id
        action = "void" if i < voided else "confirm"
        body = {"note": "not a cone"} if action == "void" else {}
        r = client.post(f"/cases/{case_id}/{action}", headers=tokens["reviewer"], json=body)
        assert r.status_code == 200, r.text


@pytest.fixture
def fleet(store, client, tokens):
    """v1 runs on every camera, 20% of its cases voided."""
    store.write(lambda conn: conn.execute(schema.cameras.insert(), [
        {"camera_id": c, "device_id": "box-1", "online": True, "health": {"inference_ms": 30.0}} for c in CAMERAS]))
    v1 = _register(client, tokens, "cones-v1", b'{"v": 1}')
    r = client.post(f"/models/releases/{v1['release_id']}/deploy", headers=tokens["admin"], json={"cameras": CAMERAS})
    assert r.status_code == 200 and set(r.json().values()) == {v1["release_id"]}
    _cases(store, client, tokens, v1, "cam-2", 10, 2, 0)
    _cases(store, client, tokens, v1, "cam-3", 10, 2, 100)
    return v1


POLICY = {"void_margin": 0.1, "detect_margin": 0.3, "min_reviewed": 10, "min_detect_samples": 1, "min_hours": 0}


def test_release_is_stored_and_signed_by_the_hub(store, client, tokens):
    content = b'{"format": "cityeye-fewshot/1"}'
    release = _register(client, tokens, "cones-v1", content)
    assert release["sha256"] == hashlib.sha256(content).hexdigest()
    assert store.evidence_bytes(release["sha256"]) == content
    key = HubSigningKey.load_or_create(store.data_dir)
    message = registry.descriptor(release["release_id"], "cones-v1", "fewshot", release["sha256"], len(content), None)
    verify(key.public, message, bytes.fromhex(release["signature"]))
    again = client.post("/models/releases", headers=tokens["admin"], data={"name": "x", "kind": "fewshot"},
                        files={"file": ("h.json", content)})
    assert again.status_code == 409 and "already registered" in again.text
    assert client.post("/models/releases", headers=tokens["reviewer"], data={"name": "x", "kind": "fewshot"},
                       files={"file": ("h.json", b"1")}).status_code == 403
    not_figures = client.post("/models/releases", headers=tokens["admin"], files={"file": ("k.onnx", b"k")},
                              data={"name": "z2", "kind": "onnx", "metrics": "1"})  # found by the API fuzz test
    assert not_figures.status_code == 422 and "JSON object" in not_figures.text
    wire = registry.wire_release(store, registry.get(store, release["release_id"]))
    assert wire.content_b64 and wire.sha256 == release["sha256"]


def test_canary_made_worse_is_rolled_back_automatically_with_an_audit_row(store, client, tokens, fleet):
    worse = _register(client, tokens, "cones-v2", b'{"v": 2, "threshold": 0.0}')
    r = client.post("/models/rollouts", headers=tokens["admin"],
                    json={"release_id": worse["release_id"], "canary": ["cam-1"], "policy": POLICY})
    assert r.status_code == 201, r.text
    rollout = r.json()
    assert rollout["status"] == "canary" and rollout["rest"] == ["cam-2", "cam-3"]
    assert registry.assignments(store) == {"cam-1": worse["release_id"], "cam-2": fleet["release_id"],
                                           "cam-3": fleet["release_id"]}
    _cases(store, client, tokens, worse, "cam-1", 5, 3, 200)  # too few reviewed yet: wait
    assert registry.judge(store, rollout["rollout_id"]).verdict.value == "wait"
    _cases(store, client, tokens, worse, "cam-1", 5, 3, 300)  # 6 of 10 voided against v1's 4 of 20
    judged = registry.judge(store, rollout["rollout_id"])
    assert judged.verdict.value == "rollback" and "void rate 0.60 (6/10) > 0.20 + 0.10" in judged.reason
    assert registry.assignments(store)["cam-1"] == fleet["release_id"]
    shown = client.get(f"/models/rollouts/{rollout['rollout_id']}", headers=tokens["admin"]).json()
    assert shown["status"] == "rolled_back"
    last = shown["audit"][-1]
    assert last["action"] == "rollback" and last["actor"] == "system:rollout" and last["cameras"] == ["cam-1"]
    assert "void rate 0.60" in last["note"] and last["release_id"] == fleet["release_id"]


def test_slower_canary_is_rolled_back(store, client, tokens, fleet):
    slow = _register(client, tokens, "cones-slow", b'{"v": 3}')
    rollout = client.post("/models/rollouts", headers=tokens["admin"],
                          json={"release_id": slow["release_id"], "canary": ["cam-1"], "policy": POLICY}).json()
    store.write(lambda conn: conn.execute(  # the canary's heartbeat: 45 ms against 30 ms before the switch
        update(schema.cameras).where(schema.cameras.c.camera_id == "cam-1").values(health={"inference_ms": 45.0})))
    r = client.post(f"/models/rollouts/{rollout['rollout_id']}/judge", headers=tokens["admin"])
    assert r.json()["verdict"] == "rollback" and "detect time 45.0 ms > 30.0 ms + 30%" in r.json()["reason"]


def test_good_canary_is_promoted_and_rolled_back_by_hand(store, client, tokens, fleet):
    better = _register(client, tokens, "cones-v3", b'{"v": 4}')
    rollout = client.post("/models/rollouts", headers=tokens["admin"],
                          json={"release_id": better["release_id"], "canary": ["cam-1"], "policy": POLICY}).json()
    _cases(store, client, tokens, better, "cam-1", 10, 1, 400)
    r = client.post(f"/models/rollouts/{rollout['rollout_id']}/judge", headers=tokens["admin"]).json()
    assert r["verdict"] == "promote" and r["status"] == "promoted"
    assert set(registry.assignments(store).values()) == {better["release_id"]}
    r = client.post(f"/models/rollouts/{rollout['rollout_id']}/rollback", headers=tokens["admin"],
                    json={"reason": "complaints from district east"})
    assert r.status_code == 200 and r.json()["status"] == "rolled_back"
    assert set(registry.assignments(store).values()) == {fleet["release_id"]}
    assert r.json()["audit"][-1]["note"].endswith("complaints from district east")
    assert [a["action"] for a in r.json()["audit"]] == ["canary", "promote", "rollback"]
    stats = {row["name"]: row for row in client.get("/models/stats", headers=tokens["admin"]).json()}
    assert stats["cones-v1"]["precision"] == pytest.approx(16 / 20)
    assert stats["cones-v3"]["precision"] == pytest.approx(9 / 10)
    assert stats["cones-v3"]["class_id"] == "work_zone_on_road"


def test_assignments_become_model_pushes_per_device(store, client, tokens, fleet):
    from hub.releases import pushes
    from protocol.push import ManagedBy, PushKind, PushResult

    state = {row["device_id"]: row for row in pushes.state(store)}
    assert state["box-1"]["release_id"] == fleet["release_id"] and state["box-1"]["status"] == "pending"
    with store.engine.connect() as conn:
        (due,) = pushes.due(conn, ["box-1"], resend_after_s=60)
    assert due.version == 1 and due.release_id == fleet["release_id"]
    pushes.mark_sent(store, [due])
    with store.engine.connect() as conn:
        assert pushes.due(conn, ["box-1"], resend_after_s=60) == []  # sent, not yet stale
    answer = PushResult(device_id="box-1", kind=PushKind.MODEL, target="detector", version=1, accepted=True,
                        managed_by=ManagedBy.HUB)
    pushes.record_result(store, answer)
    assert pushes.state(store)[0]["status"] == "accepted"
    worse = _register(client, tokens, "cones-v9", b'{"v": 9}')
    registry.start_rollout(store, worse["release_id"], ["cam-1"], "admin:test")
    (newest,) = pushes.state(store)
    assert newest["version"] == 2 and newest["release_id"] == worse["release_id"]
    pushes.record_result(store, answer.model_copy(update={"report": True}))  # reconnects still on v1
    with store.engine.connect() as conn:
        assert [d.version for d in pushes.due(conn, ["box-1"], resend_after_s=60)] == [2]
