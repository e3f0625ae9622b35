"""The ingest link sends the model pushes of a rollout (hub.releases) with the camera configs: signed by
the hub, kind model, the release as its body; the agent's answer is recorded on the push."""

from __future__ import annotations

from typing import Any

from hub.devices.hubkeys import HubSigningKey
from hub.fleet.link import MODEL_SLOT, FleetLink
from hub.releases import pushes, registry
from hub.storage import schema
from protocol.codec import PushMessage, decode
from protocol.model_release import ModelRelease
from protocol.push import ManagedBy, Push, PushKind, PushResult, open_push


def first_push_on_connect(link: FleetLink, key: HubSigningKey, device_id: str = "box-1") -> Push:
    """The one push the link sends when `device_id` connects, checked as the agent checks it (hub signature,
    addressed to that device)."""
    assert link.outgoing(now=0.0) == []  # nobody connected: nothing goes out
    link.seen(device_id, b"peer-1")
    (message,) = link.outgoing(now=1.0)
    assert message[0] == b"peer-1"
    msg = decode(message[1:])
    assert isinstance(msg, PushMessage)
    return open_push(bytes(msg.payload), bytes(msg.signature), key.public, device_id)


def test_model_pushes_go_out_signed_and_their_answers_are_recorded(store: Any) -> None:
    key = HubSigningKey.load_or_create(store.data_dir)
    store.write(lambda conn: conn.execute(schema.cameras.insert(), [
        {"camera_id": "cam-1", "device_id": "box-1", "online": True}]))
    release = registry.register(store, b'{"head": 1}', name="cones-v1", kind="fewshot", actor="admin:chief", key=key)
    registry.deploy(store, release.release_id, ["cam-1"], actor="admin:chief")
    link = FleetLink(store, key)
    push = first_push_on_connect(link, key)
    assert (push.kind, push.target, push.version) == (PushKind.MODEL, MODEL_SLOT, 1)
    body = ModelRelease.model_validate(push.body)
    assert body.release_id == release.release_id and body.sha256 == release.sha256
    assert link.outgoing(now=2.0) == []  # sent, waiting for the answer
    link.on_result(PushResult(device_id="box-1", kind=PushKind.MODEL, target=MODEL_SLOT, version=1, accepted=True,
                              managed_by=ManagedBy.HUB))
    assert {r["device_id"]: r["status"] for r in pushes.state(store)} == {"box-1": "accepted"}
