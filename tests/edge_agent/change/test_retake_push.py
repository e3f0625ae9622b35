"""The agent's side of a reference retake (edge_agent.change.retake_push) on a real pipeline: signature,
target, versions, zones the camera has no change rule on, and the report it sends when the link comes up.
The run with a real hub over ZeroMQ is test_retake_e2e.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from edge_agent.change.retake_push import ReferenceRetakes
from edge_agent.config import parse_camera_config
from edge_agent.pipeline import Pipeline
from edge_agent.sinks import MemorySink
from edge_agent.types import Frame
from protocol.codec import PushMessage, decode, encode_push
from protocol.manifest import Signer, generate_signing_key
from protocol.push import Push, PushKind, sign_push
from tests.edge_agent.edge_fakes import ScriptedDetector, textured_frame

HUB_SECRET, HUB_PUBLIC = generate_signing_key()
OTHER_SECRET, _ = generate_signing_key()
T0 = 1_700_000_000.0


def retake_msg(version: int, body: dict[str, Any], *, secret: str = HUB_SECRET, target: str = "cam1",
               kind: PushKind = PushKind.CHANGE_REFERENCE) -> PushMessage:
    push = Push(device_id="dev1", kind=kind, target=target, version=version,
                issued_at=datetime.fromtimestamp(T0 + 100, UTC), issued_by="reviewer:li", body=body)
    msg = decode(encode_push(*sign_push(push, Signer(secret))))
    assert isinstance(msg, PushMessage)
    return msg


def pipeline() -> Pipeline:
    cfg = parse_camera_config({
        "id": "cam1", "source": "cam.mp4", "timezone": "UTC", "detect_fps": 1, "motion": {"enabled": False},
        "evidence": {"clip": False}, "change": {"learn_s": 3, "learn_samples": 3},
        "zones": [{"id": "walk", "kind": "sidewalk", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]},
                  {"id": "road", "kind": "roadway", "polygon": [[0, 0], [0.1, 0], [0.1, 0.1], [0, 0.1]]}],
        "rules": [{"class_id": "exposed_garbage", "zones": ["walk"], "source": "change"}]})
    return Pipeline([cfg], ScriptedDetector(), MemorySink(), device_id="dev1", ground=None)


def test_a_signed_retake_is_applied_once_and_acked_and_bad_ones_are_refused_saying_why() -> None:
    p = pipeline()
    handler = ReferenceRetakes(device_id="dev1", hub_sign_public=HUB_PUBLIC)
    body = {"camera_id": "cam1", "zone": "walk", "box": {"x1": 0.4, "y1": 0.4, "x2": 0.6, "y2": 0.6},
            "case_id": "c1"}
    early = handler.handle(retake_msg(1, body))
    assert not early.accepted and "not running" in (early.error or "")
    handler.attach(p.retake_reference, p.change_cameras)
    assert [(r.target, r.version, r.report) for r in handler.reports()] == [("cam1", 0, True)]

    forged = handler.handle(retake_msg(1, body, secret=OTHER_SECRET))
    assert not forged.accepted and "signature" in (forged.error or "")
    elsewhere = handler.handle(retake_msg(1, {**body, "camera_id": "cam2"}))
    assert not elsewhere.accepted and "differs from the push's target cam1" in (elsewhere.error or "")
    no_rule = handler.handle(retake_msg(1, {**body, "zone": "road"}))
    assert not no_rule.accepted and "zone 'road' has no change rule" in (no_rule.error or "")

    ok = handler.handle(retake_msg(1, body))
    assert ok.accepted and ok.error is None and handler.versions == {"cam1": 1}
    assert handler.handle(retake_msg(1, body)).accepted  # a resend: acked, not applied twice
    image = textured_frame(320, 240, seed=3)
    for i in range(6):  # the reference is learned in 3 s; the retake is applied at the next analysis after it
        p.process([Frame("cam1", i, T0 + i, image)])
    assert p.cameras["cam1"].metrics.reference_retakes == 1
    assert [(r.target, r.version) for r in handler.reports()] == [("cam1", 1)]
    assert handler.handle(retake_msg(2, {**body, "zone": None})).accepted  # the whole view
    p.process([Frame("cam1", 6, T0 + 6, image)])
    assert p.cameras["cam1"].metrics.reference_retakes == 2
