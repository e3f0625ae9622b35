"""Camera configs from the hub on the agent: signed pushes checked like check-config, kept on disk,
applied to a running pipeline between ticks, answered over a real ZeroMQ link."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zmq

from edge_agent.config import CameraConfig, parse_camera_config
from edge_agent.deliver import Outbox, OutboxConfig
from edge_agent.managed_config import ManagedConfigs, config_body
from edge_agent.metrics import EdgeMetrics
from edge_agent.pipeline import Pipeline
from protocol.bundle import DeviceBundle
from protocol.codec import (
    HeartbeatMessage,
    PushMessage,
    PushResultMessage,
    SnapshotMessage,
    decode,
    encode_push,
    encode_snapshot_request,
)
from protocol.manifest import Signer, generate_signing_key
from protocol.push import ManagedBy, Push, PushKind, SnapshotRequest, sign_push
from tests.delivery_support import free_port
from tests.edge_agent.edge_fakes import ScriptedDetector, frames, textured_frame

LEFT = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
RIGHT = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]
HUB_SECRET, HUB_PUBLIC = generate_signing_key()


def camera(zone: list[list[float]] = LEFT, zone_id: str = "left") -> CameraConfig:
    return parse_camera_config({
        "id": "cam1", "source": "rtsp://user:secret@10.0.0.5/s1", "timezone": "Asia/Shanghai", "detect_fps": 2,
        "motion": {"enabled": False}, "evidence": {"clip": False},
        "zones": [{"id": zone_id, "kind": "no_parking", "polygon": zone}],
        "rules": [{"id": "park", "class_id": "illegal_car_parking", "zones": [zone_id],
                   "params": {"min_dwell_s": 2}}]})


def push_msg(body: dict[str, Any], version: int, *, secret: str = HUB_SECRET, device: str = "dev1",
             target: str = "cam1") -> PushMessage:
    push = Push(device_id=device, kind=PushKind.CAMERA_CONFIG, target=target, version=version,
                issued_at=datetime.now(UTC), issued_by="admin", body=body)
    msg = decode(encode_push(*sign_push(push, Signer(secret))))
    assert isinstance(msg, PushMessage)
    return msg


def managed(tmp_path: Path, **kw: Any) -> ManagedConfigs:
    return ManagedConfigs([camera()], tmp_path / "hub-config", device_id="dev1", hub_sign_public=HUB_PUBLIC, **kw)


def test_push_is_validated_kept_and_survives_a_restart(tmp_path: Path) -> None:
    applied: list[CameraConfig] = []
    configs = managed(tmp_path)
    metrics = EdgeMetrics()
    configs.attach(applied.append, metrics)
    body = config_body(camera(RIGHT, "right"))
    assert "source" not in body  # credentials stay on the box

    result = configs.handle(push_msg(body, 3))
    assert result.accepted and result.version == 3 and result.managed_by is ManagedBy.HUB
    assert [z.id for z in applied[0].zones] == ["right"]
    assert applied[0].source == "rtsp://user:secret@10.0.0.5/s1"  # merged from the local YAML
    assert metrics.camera("cam1").health().config_version == 3
    assert configs.handle(push_msg(body, 3)).accepted  # a resend is re-acked, not re-applied
    assert len(applied) == 1

    again = managed(tmp_path)  # the agent restarts: the kept config wins over the YAML
    assert again.versions == {"cam1": 3} and [z.id for z in again.configs()[0].zones] == ["right"]
    report = again.reports()[0]
    assert report.report and report.version == 3 and report.current is not None
    assert "source" not in report.current


def test_bad_configs_are_rejected_naming_the_field_and_nothing_changes(tmp_path: Path) -> None:
    configs = managed(tmp_path)
    applied: list[CameraConfig] = []
    configs.attach(applied.append)
    body = config_body(camera())
    body["rules"][0]["zones"] = ["nowhere"]
    result = configs.handle(push_msg(body, 1))
    assert not result.accepted
    assert result.issues[0].path == "rules[0].zones[0]" and "nowhere" in result.issues[0].message
    assert "hub config v1: rules[0].zones[0]" in (result.error or "")

    body = config_body(camera())
    body["zones"][0]["polygon"] = [[0, 0], [1.5, 0], [1, 1]]
    result = configs.handle(push_msg(body, 2))
    assert not result.accepted and result.issues[0].path == "zones[0].polygon"
    assert "outside 0-1" in result.issues[0].message

    body = config_body(camera())
    body["model"] = "other-model"
    result = configs.handle(push_msg(body, 3))
    assert not result.accepted and result.issues[0].path == "model" and "starts only" in result.issues[0].message

    result = configs.handle(push_msg({**config_body(camera()), "source": "rtsp://elsewhere"}, 4))
    assert not result.accepted and result.issues[0].path == "source"

    body = config_body(camera())  # a state head the hub's page cannot see: the box checks it has the file
    body["rules"].append({"class_id": "overflowing_garbage_bin", "zones": ["left"], "source": "state",
                          "params": {"model": str(tmp_path / "heads" / "bins.json")}})
    body["zones"][0]["kind"] = "bin_area"
    result = configs.handle(push_msg(body, 5))
    assert not result.accepted and result.issues[0].path == "rules[1].params.model"
    assert "cannot read few-shot model" in result.issues[0].message

    assert applied == [] and configs.versions == {"cam1": 0}
    assert not (tmp_path / "hub-config" / "cam1.json").exists()


def test_unsigned_foreign_or_unmanaged_pushes_are_refused(tmp_path: Path) -> None:
    body = config_body(camera(RIGHT, "right"))
    other_secret, _ = generate_signing_key()
    result = managed(tmp_path).handle(push_msg(body, 1, secret=other_secret))
    assert not result.accepted and "signature does not verify" in (result.error or "")
    result = managed(tmp_path).handle(push_msg(body, 1, device="dev2"))
    assert not result.accepted and "for device dev2" in (result.error or "")
    result = managed(tmp_path).handle(push_msg(body, 1, target="cam9"))
    assert not result.accepted and "cam9 is not on this device" in (result.error or "")
    local = managed(tmp_path, managed=False)
    result = local.handle(push_msg(body, 1))
    assert not result.accepted and "managed locally" in (result.error or "")
    assert local.reports()[0].managed_by is ManagedBy.LOCAL
    unkeyed = ManagedConfigs([camera()], tmp_path / "k", device_id="dev1", hub_sign_public=None)
    assert "re-enrol" in (unkeyed.handle(push_msg(body, 1)).error or "")
    assert unkeyed.reports() == []  # a hub that predates pushes gets no message it cannot read


def test_running_pipeline_uses_the_new_zone_from_the_next_tick(tmp_path: Path) -> None:
    """A car parked on the right half: nothing fires in the left zone; after the push (between ticks,
    same pipeline object, same tracker) the problem opens in the new right zone."""
    events: list[Any] = []

    class Sink:
        def submit(self, event: Any, media: Any) -> None:
            events.append(event)

    car = ("car", (400.0, 200.0, 560.0, 320.0))  # on the right half of 640x480
    pipeline = Pipeline([camera()], ScriptedDetector([car]), Sink(), device_id="dev1", ground=None)
    configs = managed(tmp_path)
    configs.attach(pipeline.reconfigure)
    image = textured_frame()
    batch = frames("cam1", image, 1_700_000_000.0, 5, 2)
    for frame in batch:
        pipeline.process([frame])
    assert events == []
    assert configs.handle(push_msg(config_body(camera(RIGHT, "right")), 1)).accepted
    for frame in frames("cam1", image, batch[-1].ts + 0.5, 5, 2):
        pipeline.process([frame])
    pipeline.flush()
    assert events and {e.zone for e in events} == {"right"}


def test_over_zmq_reports_on_connect_answers_pushes_and_heartbeats_the_version(tmp_path: Path) -> None:
    port = free_port()
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.bind(f"tcp://127.0.0.1:{port}")
    curve_pub, curve_sec = zmq.curve_keypair()
    sign_secret, sign_public = generate_signing_key()
    bundle = DeviceBundle(device_id="dev1", endpoint=f"tcp://127.0.0.1:{port}", hub_curve_public=curve_pub.decode(),
                          curve_public=curve_pub.decode(), curve_secret=curve_sec.decode(),
                          sign_secret=sign_secret, sign_public=sign_public, hub_sign_public=HUB_PUBLIC)
    configs = managed(tmp_path)
    metrics = EdgeMetrics()
    configs.attach(lambda cfg: None, metrics)
    pipeline = Pipeline([camera()], ScriptedDetector([]), lambda: None, device_id="dev1", ground=None)
    outbox = Outbox(bundle, OutboxConfig(spool_dir=tmp_path / "spool", insecure=True, heartbeat_s=0.2),
                    health=metrics.health, pushes=configs, snapshots=pipeline.snapshot)

    def next_of(kind: type, timeout: float = 10.0) -> tuple[bytes, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if router.poll(200):
                peer, *frames = router.recv_multipart()
                msg = decode(frames)
                if isinstance(msg, kind):
                    return peer, msg
        raise AssertionError(f"no {kind.__name__} within {timeout} s")

    with outbox:
        peer, report = next_of(PushResultMessage)
        assert report.result.report and report.result.version == 0 and report.result.current is not None
        assert report.result.current["zones"][0]["id"] == "left"
        sent = push_msg(config_body(camera(RIGHT, "right")), 5)
        router.send_multipart([peer, *encode_push(bytes(sent.payload), bytes(sent.signature))])
        _, answer = next_of(PushResultMessage)
        assert answer.result.accepted and answer.result.version == 5 and not answer.result.report
        deadline = time.monotonic() + 5
        while True:
            _, beat = next_of(HeartbeatMessage)
            if beat.heartbeat.cameras[0].config_version == 5 or time.monotonic() > deadline:
                break
        assert beat.heartbeat.cameras[0].config_version == 5
        assert beat.heartbeat.cpu_percent is not None

        router.send_multipart([peer, *encode_snapshot_request(SnapshotRequest(device_id="dev1", camera_id="cam1"))])
        _, none_yet = next_of(SnapshotMessage)
        assert none_yet.snapshot.error == "camera cam1 has delivered no frame yet" and len(none_yet.jpeg) == 0
        image = textured_frame(320, 240)
        pipeline.process(frames("cam1", image, 1_700_000_000.0, 0, 2))
        router.send_multipart([peer, *encode_snapshot_request(SnapshotRequest(device_id="dev1", camera_id="cam1"))])
        _, snap = next_of(SnapshotMessage)
        decoded = cv2.imdecode(np.frombuffer(bytes(snap.jpeg), np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == image.shape and snap.snapshot.taken_at.timestamp() == 1_700_000_000.0
    router.close(linger=0)
    kept = json.loads((tmp_path / "hub-config" / "cam1.json").read_text())
    assert kept["version"] == 5 and kept["issued_by"] == "admin"


def test_the_detect_stream_address_stays_on_the_box_too(tmp_path: Path) -> None:
    sub = "rtsp://user:secret@10.0.0.5/s2"
    local = camera().model_copy(update={"detect_source": sub})
    configs = ManagedConfigs([local], tmp_path / "hub-config", device_id="dev1", hub_sign_public=HUB_PUBLIC)
    applied: list[CameraConfig] = []
    configs.attach(applied.append)
    body = config_body(local)
    assert "detect_source" not in body and "source" not in body
    assert configs.handle(push_msg(config_body(camera(RIGHT, "right")), 1)).accepted
    assert applied[0].detect_source == sub and applied[0].source == "rtsp://user:secret@10.0.0.5/s1"
    result = configs.handle(push_msg({**body, "detect_source": "rtsp://elsewhere"}, 2))
    assert not result.accepted and [i.path for i in result.issues] == ["detect_source"]
    assert "detect_source" not in (configs.reports()[0].current or {})
