"""Model pushes on the agent (edge_agent/model_push.py): a hub-signed release is checked, installed,
loaded with the real detector's features and swapped in; kept across restarts; refused when forged."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.config import parse_camera_config
from edge_agent.fewshot import FewShotDetector, feature_taps
from edge_agent.managed_config import ManagedConfigs
from edge_agent.model_push import SLOT, ModelPushes, PushRouter
from models.cache import cached
from models.fewshot import Backbone, FewShotModel, Head, LinearProbe
from protocol.codec import PushMessage, decode, encode_push
from protocol.manifest import Signer, generate_signing_key
from protocol.model_release import inline_release
from protocol.push import Push, PushKind, sign_push

HUB_SECRET, HUB_PUBLIC = generate_signing_key()


@pytest.fixture(scope="module")
def head_bytes() -> bytes:
    """A few-shot head on the cached coco-nanodet (untrained weights: the test is about delivery)."""
    resolved = cached("coco-nanodet")
    if resolved is None:
        pytest.fail("the default model is not cached: run ./setup.sh (it pulls coco-nanodet)")
    taps = feature_taps(resolved.manifest)
    dims = 256
    probe = LinearProbe(np.zeros(dims, np.float32), np.ones(dims, np.float32), np.zeros(dims, np.float32), -5.0)
    model = FewShotModel("pushed-cones", "cells", Backbone("coco-nanodet", resolved.manifest.sha256,
                         tuple(taps.tensors)), (Head("traffic_cone", probe, 0.9, (0.02, 0.04)),), (416, 416))
    return model.to_json().encode()


def push_msg(body: dict[str, Any], version: int, *, secret: str = HUB_SECRET, kind: PushKind = PushKind.MODEL,
             target: str = SLOT) -> PushMessage:
    push = Push(device_id="dev1", kind=kind, target=target, version=version, issued_at=datetime.now(UTC),
                issued_by="admin:ops", body=body)
    msg = decode(encode_push(*sign_push(push, Signer(secret))))
    assert isinstance(msg, PushMessage)
    return msg


def pushes(tmp_path: Path) -> ModelPushes:
    return ModelPushes(tmp_path / "hub-model", device_id="dev1", hub_sign_public=HUB_PUBLIC, threads=1)


def test_signed_release_is_installed_swapped_in_and_kept(tmp_path, head_bytes):
    models = pushes(tmp_path)
    swapped: list[Any] = []
    models.attach(swapped.append)
    release = inline_release("pushed-cones", 7, "fewshot", head_bytes)
    result = models.handle(push_msg(release.model_dump(mode="json"), 1))
    assert result.accepted and result.version == 1 and result.current["release_id"] == 7
    (detector,) = swapped
    assert isinstance(detector, FewShotDetector) and detector.labels[-1] == "traffic_cone"
    assert detector.manifest.name == "pushed-cones" and detector.manifest.sha256 == release.sha256
    assert models.handle(push_msg(release.model_dump(mode="json"), 1)).accepted  # a resend: same answer
    assert len(swapped) == 1
    restarted = pushes(tmp_path)  # a restarted agent runs the kept release and says so
    assert restarted.version == 1 and restarted.kept_detector().manifest.sha256 == release.sha256
    (report,) = restarted.reports()
    assert report.report and report.kind == PushKind.MODEL and report.version == 1
    assert report.current == {"name": "pushed-cones", "release_id": 7, "sha256": release.sha256}


def test_forged_stale_or_broken_pushes_change_nothing(tmp_path, head_bytes):
    models = pushes(tmp_path)
    swapped: list[Any] = []
    models.attach(swapped.append)
    release = inline_release("pushed-cones", 7, "fewshot", head_bytes)
    body = release.model_dump(mode="json")
    other_secret, _ = generate_signing_key()
    forged = models.handle(push_msg(body, 1, secret=other_secret))
    assert not forged.accepted and "signature" in forged.error
    wrong_hash = models.handle(push_msg({**body, "sha256": "0" * 64}, 1))
    assert not wrong_hash.accepted and "is not the 000000000000… the hub signed" in wrong_hash.error
    missing = models.handle(push_msg({k: v for k, v in body.items() if k != "size"}, 1))
    assert not missing.accepted and missing.issues[0].path == "size"
    wrong_slot = models.handle(push_msg(body, 1, target="other"))
    assert not wrong_slot.accepted and "slot 'detector'" in wrong_slot.error
    assert swapped == [] and models.version == 0 and not (tmp_path / "hub-model" / "model.json").exists()
    assert models.handle(push_msg(body, 3)).accepted
    older = models.handle(push_msg(body, 2))
    assert not older.accepted and "older than version 3" in older.error


def test_router_sends_each_kind_to_its_handler(tmp_path, head_bytes):
    cam = parse_camera_config({"id": "cam1", "source": "rtsp://10.0.0.5/s1", "timezone": "Asia/Shanghai", "zones": [],
                               "rules": []})
    configs = ManagedConfigs([cam], tmp_path / "hub-config", device_id="dev1", hub_sign_public=HUB_PUBLIC)
    models = pushes(tmp_path)
    router = PushRouter({PushKind.CAMERA_CONFIG: configs, PushKind.MODEL: models})
    release = inline_release("pushed-cones", 7, "fewshot", head_bytes)
    assert router.handle(push_msg(release.model_dump(mode="json"), 1)).kind == PushKind.MODEL
    assert models.version == 1
    config_answer = router.handle(push_msg({"detect_fps": 2}, 1, kind=PushKind.CAMERA_CONFIG, target="cam1"))
    assert config_answer.kind == PushKind.CAMERA_CONFIG
    assert {(r.kind, r.target) for r in router.reports()} == {(PushKind.CAMERA_CONFIG, "cam1"),
                                                             (PushKind.MODEL, SLOT)}
    only_configs = PushRouter({PushKind.CAMERA_CONFIG: configs})
    refused = only_configs.handle(push_msg(release.model_dump(mode="json"), 2))
    assert not refused.accepted and "not handled by this agent" in refused.error
