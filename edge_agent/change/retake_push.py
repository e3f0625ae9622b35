"""Reference retakes from the hub: the agent side of "this place was verified clear" (issue 17).

A retake is the hub-signed `Push` that configs and models use (`protocol.push`), with kind
`change_reference`, the camera as target and a `protocol.messages.ReferenceRetake` as its body (see
hub.fleet.retakes for when the hub sends one). The signature is checked with the hub key of the
enrolment bundle; the camera's `ChangeWatch` then re-takes the place at its next analysis, keeping
changes that began after the push's `issued_at`. Versions only go forward per camera: a resend of one
already applied is acked again and not re-applied. The versions live in memory: after a restart the
reference is learned anew anyway, and a retake the hub sends again is safe to apply twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pydantic import ValidationError

from protocol.codec import PushMessage
from protocol.messages import NormBox, ReferenceRetake
from protocol.push import ManagedBy, Push, PushKind, PushRefused, PushResult, open_push

log = logging.getLogger(__name__)

# (camera id, zone or None, box or None, as_of epoch seconds) -> None; LookupError saying why it cannot
Retake = Callable[[str, str | None, NormBox | None, float], None]


class ReferenceRetakes:
    """The push handler for kind `change_reference` (edge_agent.model_push.PushRouter)."""

    def __init__(self, *, device_id: str, hub_sign_public: str | None) -> None:
        self.device_id = device_id
        self.hub_sign_public = hub_sign_public
        self.versions: dict[str, int] = {}  # camera id -> newest retake version applied
        self._retake: Retake | None = None
        self._cameras: Callable[[], list[str]] = list
        self._lock = threading.Lock()

    def attach(self, retake: Retake, cameras: Callable[[], list[str]]) -> None:
        """`retake`: Pipeline.retake_reference; `cameras`: the camera ids with change rules (reports)."""
        self._retake, self._cameras = retake, cameras

    def handle(self, msg: PushMessage) -> PushResult:
        push = msg.push
        try:
            open_push(bytes(msg.payload), bytes(msg.signature), self.hub_sign_public, self.device_id)
        except PushRefused as exc:
            log.error("reference retake %s v%d refused: %s", push.target, push.version, exc)
            return self._result(push, accepted=False, error=str(exc))
        if push.kind is not PushKind.CHANGE_REFERENCE:
            return self._result(push, accepted=False, error=f"kind {push.kind.value}: not a reference retake")
        with self._lock:
            return self._apply(push)

    def _apply(self, push: Push) -> PushResult:
        if push.version <= self.versions.get(push.target, 0):  # a resend, or overtaken by a newer retake
            return self._result(push, accepted=True)
        try:
            body = ReferenceRetake.model_validate(push.body)
        except ValidationError as exc:
            return self._result(push, accepted=False, error=f"body: {exc.errors()[0]['msg']}"[:4000])
        if body.camera_id != push.target:
            return self._result(push, accepted=False, error=f"body.camera_id {body.camera_id} differs from the "
                                f"push's target {push.target}")
        if self._retake is None:
            return self._result(push, accepted=False, error="the pipeline is not running yet")
        try:
            self._retake(body.camera_id, body.zone, body.box, push.issued_at.timestamp())
        except LookupError as exc:
            log.warning("reference retake %s v%d not applied: %s", push.target, push.version, exc)
            return self._result(push, accepted=False, error=str(exc)[:4000])
        self.versions[push.target] = push.version
        log.info("camera %s: change reference of zone %s re-taken (retake v%d, case %s, verified by %s)",
                 body.camera_id, body.zone or "*", push.version, body.case_id or "-", push.issued_by)
        return self._result(push, accepted=True)

    def _result(self, push: Push, *, accepted: bool, error: str | None = None) -> PushResult:
        return PushResult(device_id=self.device_id, kind=push.kind, target=push.target, version=push.version,
                          accepted=accepted, managed_by=ManagedBy.HUB, error=error)

    def reports(self) -> list[PushResult]:
        """Per camera with change rules, the newest retake applied (0: none since start-up)."""
        if not self.hub_sign_public:
            return []
        with self._lock:
            return [PushResult(device_id=self.device_id, kind=PushKind.CHANGE_REFERENCE, target=camera_id,
                               version=self.versions.get(camera_id, 0), accepted=True, report=True,
                               managed_by=ManagedBy.HUB) for camera_id in self._cameras()]
