"""Desired state the hub sends to one device, and the device's answer.

A `Push` says "run version N of (kind, target)": a camera's config today, a model tomorrow (the
model rollout reuses the same message with kind MODEL). The hub signs its exact JSON bytes with its
Ed25519 key (the one that signs evidence packages); the device checks the signature with the hub key
from its enrolment bundle, so a push is the hub's even if the transport key of some peer leaked.
Versions only go forward: a device ignores a push older than what it runs and re-acks the same one.

The device answers every push with a `PushResult`: accepted (it runs that version now) or rejected
with the validation error, each problem with its field path. It also sends a PushResult for each
target it runs when it connects (`report=True`), so the hub learns what a box runs after an outage
and pushes the newer version it missed.

Camera configs travel without `source`: the stream's address and credentials stay on the box.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import Field, field_validator

from protocol.manifest import ManifestError, verify
from protocol.messages import PROTOCOL_VERSION, WireModel, _optional_utc, _require_utc

ID = r"^[A-Za-z0-9_.-]{1,64}$"
MAX_PUSH_BYTES = 256 * 1024
LOCAL_FIELDS = ("source", "detect_source")  # camera-config fields that never leave the box (stream addresses)


class PushKind(StrEnum):
    CAMERA_CONFIG = "camera_config"  # body: the camera's config without LOCAL_FIELDS; target: camera id
    MODEL = "model"  # body: a model descriptor (name, sha256, where to fetch); target: the model slot
    # body: protocol.messages.ReferenceRetake; target: camera id. Each retake is the camera's next version;
    # issued_at is when the case was verified clear (the agent keeps changes that began after it).
    CHANGE_REFERENCE = "change_reference"


class ManagedBy(StrEnum):
    LOCAL = "local"  # from the box's own YAML; the hub only shows it
    HUB = "hub"  # last set by a hub push (kept on the box's disk, survives restarts)


class Push(WireModel):
    v: Literal[1] = PROTOCOL_VERSION
    device_id: str = Field(pattern=ID)
    kind: PushKind
    target: str = Field(pattern=ID, description="camera id (camera_config) or model slot (model)")
    version: int = Field(ge=1, description="grows by one per change of this (device, kind, target)")
    issued_at: datetime
    issued_by: str = Field(max_length=128, description="who made the change (the hub user)")
    body: dict[str, Any]

    _utc = field_validator("issued_at")(_require_utc)


class PushIssue(WireModel):
    path: str = Field(max_length=200, description='field path, e.g. "zones[0].polygon"; "" for the whole body')
    message: str = Field(max_length=1000)


class PushResult(WireModel):
    v: Literal[1] = PROTOCOL_VERSION
    device_id: str = Field(pattern=ID)
    kind: PushKind
    target: str = Field(pattern=ID)
    version: int = Field(ge=0, description="the version answered; 0 = a local config the hub never set")
    accepted: bool
    report: bool = Field(default=False, description="sent on connect to say what runs, not answering a push")
    managed_by: ManagedBy = ManagedBy.LOCAL
    error: str | None = Field(default=None, max_length=4000)
    issues: list[PushIssue] = Field(default_factory=list, max_length=64)
    current: dict[str, Any] | None = Field(default=None, description="what the device runs now (reports, "
                                           "so the hub can start from the box's own config)")


class SnapshotRequest(WireModel):
    """The hub asks for a fresh picture of one camera (the page's zone editor draws on it)."""

    v: Literal[1] = PROTOCOL_VERSION
    device_id: str = Field(pattern=ID)
    camera_id: str = Field(pattern=ID)


class Snapshot(WireModel):
    """The answer: the camera's newest frame as a JPEG in the next frame, or why there is none."""

    v: Literal[1] = PROTOCOL_VERSION
    device_id: str = Field(pattern=ID)
    camera_id: str = Field(pattern=ID)
    taken_at: datetime | None = None
    error: str | None = Field(default=None, max_length=500)

    _utc = field_validator("taken_at")(_optional_utc)


class SignsBytes(Protocol):
    def sign(self, message: bytes) -> bytes: ...


def canonical(push: Push) -> bytes:
    """The exact bytes the hub signs and the device verifies."""
    return json.dumps(push.model_dump(mode="json"), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def sign_push(push: Push, signer: SignsBytes) -> tuple[bytes, bytes]:
    """(payload, signature) for the wire."""
    payload = canonical(push)
    return payload, signer.sign(payload)


class PushRefused(ValueError):
    """A push that must not be applied: bad signature, wrong device, unreadable."""


def open_push(payload: bytes, signature: bytes, hub_sign_public: str | None, device_id: str) -> Push:
    """Verify the hub's signature, then parse; raise PushRefused saying why not."""
    if not hub_sign_public:
        raise PushRefused("this device's bundle has no hub signing key (hub_sign_public); pin the hub's key "
                          "(`cityeye edge pin-hub-key`) or re-enrol it to accept pushes from the hub")
    try:
        verify(hub_sign_public, payload, signature)
    except ManifestError:
        raise PushRefused("push signature does not verify with the hub key in this device's bundle") from None
    push = Push.model_validate_json(payload)
    if push.device_id != device_id:
        raise PushRefused(f"push is for device {push.device_id}, this is {device_id}")
    return push


def strip_local(config: dict[str, Any]) -> dict[str, Any]:
    """A camera config as it travels to the hub: without the box-only fields."""
    return {k: v for k, v in config.items() if k not in LOCAL_FIELDS}
