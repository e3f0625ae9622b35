"""The ingest loop's side of running cameras from the hub: which agent is on which connection, the config
pushes, model pushes (hub.releases.pushes), change-reference retakes (hub.fleet.retakes) and snapshot
requests due for them, and what they answer.

The page writes to the database (a saved config version, a snapshot request); the loop that owns the
agents' socket asks `outgoing()` about twice a second for what to send to the agents connected to it
(with several ingest processes each sends to its own), and hands every PUSH_RESULT and SNAPSHOT it
receives to `on_result` / `on_snapshot`. Pushes are signed here with the hub's key.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from hub.devices.hubkeys import HubSigningKey
from hub.fleet import configs, retakes, snapshots
from hub.releases import pushes as model_pushes
from hub.releases import registry
from protocol.codec import encode_push, encode_snapshot_request
from protocol.messages import NormBox, ReferenceRetake
from protocol.push import Push, PushKind, PushResult, Snapshot, SnapshotRequest, sign_push

log = logging.getLogger(__name__)

MODEL_SLOT = "detector"  # the agent's one model slot (edge_agent.model_push.SLOT)


class FleetLink:
    def __init__(self, store: Any, signer: HubSigningKey, *, poll_s: float = 0.5,
                 resend_after_s: float = 15.0) -> None:
        self.store = store
        self.signer = signer
        self.poll_s = poll_s
        self.resend_after_s = resend_after_s
        self.files = snapshots.SnapshotFiles(store.data_dir / "snapshots")
        self.peers: dict[str, bytes] = {}  # device id -> routing id of its newest connection
        self._next_poll = 0.0

    def seen(self, device_id: str, routing_id: bytes) -> None:
        if self.peers.get(device_id) != routing_id:
            self.peers[device_id] = routing_id
            self._next_poll = 0.0  # a (re)connected agent: look for what it missed now

    def on_result(self, result: PushResult) -> None:
        try:
            configs.record_result(self.store, result)  # each ignores the other kind
            model_pushes.record_result(self.store, result)
            retakes.record_result(self.store, result)
        except Exception:  # a database hiccup: the agent reports again on its next connect
            log.exception("could not record %s's answer for %s v%d", result.device_id, result.target, result.version)
            return
        if not result.report:
            log.info("device %s %s %s v%d%s", result.device_id, "applied" if result.accepted else "REJECTED",
                     result.target, result.version, "" if result.accepted else f": {result.error}")
        self._next_poll = 0.0

    def on_snapshot(self, snap: Snapshot, jpeg: bytes) -> None:
        try:
            self.files.put(snap, jpeg)
        except ValueError as exc:
            log.warning("snapshot from %s/%s refused: %s", snap.device_id, snap.camera_id, exc)

    def outgoing(self, now: float | None = None) -> list[list[bytes]]:
        """[routing id, *frames] messages due now (at most every poll_s)."""
        now = time.monotonic() if now is None else now
        if now < self._next_poll or not self.peers:
            return []
        self._next_poll = now + self.poll_s
        try:
            with self.store.engine.connect() as conn:
                due = configs.due_pushes(conn, self.peers, self.resend_after_s)
                models = model_pushes.due(conn, self.peers, self.resend_after_s)
                asked = snapshots.due_requests(conn, self.peers)
                retake = retakes.due(conn, self.peers, self.resend_after_s)
            out = [[self.peers[p.device_id], *self._push_frames(p)] for p in due]
            out += [[self.peers[m.device_id], *self._model_frames(m)] for m in models]
            out += [[self.peers[r.device_id], *self._retake_frames(r)] for r in retake]
            out += [[self.peers[r.device_id], *encode_snapshot_request(
                SnapshotRequest(device_id=r.device_id, camera_id=r.camera_id))] for r in asked]
            configs.mark_sent(self.store, due)
            model_pushes.mark_sent(self.store, models)
            snapshots.mark_requested(self.store, asked)
            retakes.mark_sent(self.store, retake)
        except Exception:
            log.exception("could not read the pushes due; trying again in %.1f s", self.poll_s)
            return []
        return out

    def _push_frames(self, due: configs.DuePush) -> list[bytes]:
        push = Push(device_id=due.device_id, kind=PushKind.CAMERA_CONFIG, target=due.camera_id,
                    version=due.version, issued_at=due.created_at, issued_by=due.created_by, body=due.body)
        return encode_push(*sign_push(push, self.signer))

    def _model_frames(self, due: model_pushes.DueModelPush) -> list[bytes]:
        release = registry.wire_release(self.store, registry.get(self.store, due.release_id))
        push = Push(device_id=due.device_id, kind=PushKind.MODEL, target=MODEL_SLOT, version=due.version,
                    issued_at=due.created_at, issued_by=due.created_by,
                    body=release.model_dump(mode="json", exclude_none=True))
        return encode_push(*sign_push(push, self.signer))

    def _retake_frames(self, due: retakes.DueRetake) -> list[bytes]:
        box = NormBox.model_validate(due.box) if due.box else None
        body = ReferenceRetake(camera_id=due.camera_id, zone=due.zone, box=box, case_id=due.case_id)
        push = Push(device_id=due.device_id, kind=PushKind.CHANGE_REFERENCE, target=due.camera_id,
                    version=due.version, issued_at=due.created_at, issued_by=due.created_by,
                    body=body.model_dump(mode="json", exclude_none=True))
        return encode_push(*sign_push(push, self.signer))
