"""The multipart wire format between edge agents and the hub: paired encode/decode functions.

Frames of an EVENT (agent -> hub):

    0  b"CITYEYE/1"           protocol id and version; anything else is refused
    1  b"EVENT"               command
    2  header JSON            device id, event id, seq, sizes and hashes: cheap checks first
    3  metadata JSON          the ProblemEvent
    4..4+n-1  media           raw bytes, one frame per `event.media` entry, in that order
    4+n  manifest             canonical JSON (protocol.manifest.EvidenceManifest), signed
    5+n  signature            64-byte Ed25519 signature of the manifest

HEARTBEAT (agent -> hub): [id, b"HEARTBEAT", Heartbeat JSON].
ACK / NACK (hub -> agent): [id, b"ACK" | b"NACK", Reply JSON].
PUSH (hub -> agent): [id, b"PUSH", Push JSON (canonical), 64-byte hub Ed25519 signature of it].
PUSH_RESULT (agent -> hub): [id, b"PUSH_RESULT", PushResult JSON].
SNAPSHOT_REQUEST (hub -> agent): [id, b"SNAPSHOT_REQUEST", SnapshotRequest JSON].
SNAPSHOT (agent -> hub): [id, b"SNAPSHOT", Snapshot JSON, JPEG bytes (empty when Snapshot.error says why)].

Media never goes through base64 or JSON; decode never unpickles and never trusts a size it
hasn't checked. Every decode failure is a DecodeError naming the frame and what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from pydantic import Field, ValidationError

from protocol.manifest import (
    SIGNATURE_BYTES,
    EvidenceManifest,
    ManifestError,
    Signer,
    build_manifest,
    first_error,
    sha256_hex,
)
from protocol.messages import FROM_WIRE, Heartbeat, ProblemEvent, WireModel
from protocol.push import MAX_PUSH_BYTES, Push, PushResult, Snapshot, SnapshotRequest

PROTOCOL_ID = b"CITYEYE/1"
FIXED_EVENT_FRAMES = 6  # everything but the media frames
MAX_HEADER_BYTES = 16 * 1024
MAX_METADATA_BYTES = 256 * 1024
MAX_MANIFEST_BYTES = 16 * 1024
MAX_MEDIA_FRAMES = 8

Buffer = bytes | memoryview
_M = TypeVar("_M", bound=WireModel)


class Command(StrEnum):
    EVENT = "EVENT"
    HEARTBEAT = "HEARTBEAT"
    ACK = "ACK"
    NACK = "NACK"
    PUSH = "PUSH"
    PUSH_RESULT = "PUSH_RESULT"
    SNAPSHOT_REQUEST = "SNAPSHOT_REQUEST"
    SNAPSHOT = "SNAPSHOT"


class DecodeError(ValueError):
    """A message that can never be accepted. `frame` is the index of the offending frame."""

    def __init__(self, frame: int | None, reason: str, *, event_id: str | None = None,
                 seq: int | None = None) -> None:
        where = f"frame {frame}: " if frame is not None else ""
        super().__init__(f"{where}{reason}")
        self.frame = frame
        self.detail = reason
        self.reason = f"{where}{reason}"
        self.event_id = event_id
        self.seq = seq


@dataclass(frozen=True)
class Limits:
    """What a receiver accepts; bigger messages are refused with a reason, not buffered."""

    max_media_bytes: int = 16 * 1024 * 1024  # one media frame (a short clip)
    max_event_bytes: int = 48 * 1024 * 1024  # all frames of one event


class MediaSize(WireModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    size: int = Field(ge=0)


class EventHeader(WireModel):
    device_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    event_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    seq: int = Field(ge=1)
    metadata_size: int = Field(ge=0)
    media: list[MediaSize] = Field(default_factory=list, max_length=MAX_MEDIA_FRAMES)
    manifest_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Reply(WireModel):
    """The hub's answer to one EVENT. `event_id`/`seq` are None when the header was unreadable."""

    event_id: str | None = None
    seq: int | None = None
    duplicate: bool = False
    case_id: str | None = None
    reason: str | None = Field(default=None, max_length=1000)


@dataclass(frozen=True)
class EventMessage:
    header: EventHeader
    event: ProblemEvent
    metadata: Buffer  # the exact JSON bytes covered by the manifest
    media: Mapping[str, Buffer]
    manifest: EvidenceManifest
    manifest_bytes: Buffer
    signature: Buffer


@dataclass(frozen=True)
class HeartbeatMessage:
    heartbeat: Heartbeat


@dataclass(frozen=True)
class ReplyMessage:
    command: Command  # ACK or NACK
    reply: Reply


@dataclass(frozen=True)
class PushMessage:
    push: Push
    payload: Buffer  # the exact signed bytes
    signature: Buffer


@dataclass(frozen=True)
class PushResultMessage:
    result: PushResult


@dataclass(frozen=True)
class SnapshotRequestMessage:
    request: SnapshotRequest


@dataclass(frozen=True)
class SnapshotMessage:
    snapshot: Snapshot
    jpeg: Buffer


Message = (EventMessage | HeartbeatMessage | ReplyMessage | PushMessage | PushResultMessage
           | SnapshotRequestMessage | SnapshotMessage)


@dataclass(frozen=True)
class SealedEvent:
    """An event ready for the wire, plus what the sender's chain needs next."""

    frames: list[bytes]
    seq: int
    manifest_sha256: str


# --- encode ---

def seal_event(event: ProblemEvent, media: Mapping[str, bytes], signer: Signer, *, seq: int,
               prev_manifest_sha256: str) -> SealedEvent:
    """Serialise, hash, sign and frame one event (the agent does this once, at spool time)."""
    missing = [ref.name for ref in event.media if ref.name not in media]
    if missing:
        raise ValueError(f"media bytes missing for {missing}")
    metadata = event.model_dump_json().encode()
    manifest = build_manifest(event, metadata, media, seq=seq, prev_manifest_sha256=prev_manifest_sha256)
    manifest_bytes = manifest.to_bytes()
    frames = encode_event(event, metadata, [media[ref.name] for ref in event.media], manifest_bytes,
                          signer.sign(manifest_bytes), seq=seq)
    return SealedEvent(frames=frames, seq=seq, manifest_sha256=sha256_hex(manifest_bytes))


def encode_event(event: ProblemEvent, metadata: bytes, media: Sequence[bytes], manifest_bytes: bytes,
                 signature: bytes, *, seq: int) -> list[bytes]:
    header = EventHeader(device_id=event.device_id, event_id=event.event_id, seq=seq,
                         metadata_size=len(metadata),
                         media=[MediaSize(name=r.name, size=len(m)) for r, m in zip(event.media, media,
                                                                                     strict=True)],
                         manifest_sha256=sha256_hex(manifest_bytes))
    return [PROTOCOL_ID, Command.EVENT.encode(), header.model_dump_json().encode(), metadata, *media,
            manifest_bytes, signature]


def encode_heartbeat(heartbeat: Heartbeat) -> list[bytes]:
    return [PROTOCOL_ID, Command.HEARTBEAT.encode(), heartbeat.model_dump_json().encode()]


def encode_ack(reply: Reply) -> list[bytes]:
    return [PROTOCOL_ID, Command.ACK.encode(), reply.model_dump_json().encode()]


def encode_nack(reply: Reply) -> list[bytes]:
    return [PROTOCOL_ID, Command.NACK.encode(), reply.model_dump_json().encode()]


def encode_push(payload: bytes, signature: bytes) -> list[bytes]:
    """`payload` and `signature` from protocol.push.sign_push."""
    return [PROTOCOL_ID, Command.PUSH.encode(), payload, signature]


def encode_push_result(result: PushResult) -> list[bytes]:
    return [PROTOCOL_ID, Command.PUSH_RESULT.encode(), result.model_dump_json().encode()]


def encode_snapshot_request(request: SnapshotRequest) -> list[bytes]:
    return [PROTOCOL_ID, Command.SNAPSHOT_REQUEST.encode(), request.model_dump_json().encode()]


def encode_snapshot(snapshot: Snapshot, jpeg: bytes) -> list[bytes]:
    return [PROTOCOL_ID, Command.SNAPSHOT.encode(), snapshot.model_dump_json().encode(), jpeg]


# --- decode ---

def decode(frames: Sequence[Buffer], limits: Limits = Limits()) -> Message:
    """Parse one multipart message; raise DecodeError saying which frame is wrong and how."""
    if len(frames) < 2:
        raise DecodeError(None, f"expected at least 2 frames, got {len(frames)}")
    if bytes(frames[0]) != PROTOCOL_ID:
        raise DecodeError(0, f"unknown protocol {bytes(frames[0][:32])!r}, expected {PROTOCOL_ID!r}")
    try:
        command = Command(bytes(frames[1][:16]).decode("ascii", "replace"))
    except ValueError:
        raise DecodeError(1, f"unknown command {bytes(frames[1][:16])!r}") from None
    if command is Command.EVENT:
        return _decode_event(frames, limits)
    if command is Command.PUSH:
        if len(frames) != 4:
            raise DecodeError(None, f"PUSH needs 4 frames, got {len(frames)}")
        if len(frames[3]) != SIGNATURE_BYTES:
            raise DecodeError(3, f"signature is {len(frames[3])} bytes, expected {SIGNATURE_BYTES}")
        return PushMessage(_parse(Push, frames[2], 2, MAX_PUSH_BYTES), frames[2], frames[3])
    if command is Command.SNAPSHOT:
        if len(frames) != 4:
            raise DecodeError(None, f"SNAPSHOT needs 4 frames, got {len(frames)}")
        if len(frames[3]) > limits.max_media_bytes:
            raise DecodeError(3, f"snapshot is {len(frames[3])} bytes, limit {limits.max_media_bytes}")
        return SnapshotMessage(_parse(Snapshot, frames[2], 2, MAX_HEADER_BYTES), frames[3])
    if len(frames) != 3:
        raise DecodeError(None, f"{command} needs 3 frames, got {len(frames)}")
    if command is Command.HEARTBEAT:
        return HeartbeatMessage(_parse(Heartbeat, frames[2], 2, MAX_METADATA_BYTES))
    if command is Command.PUSH_RESULT:
        return PushResultMessage(_parse(PushResult, frames[2], 2, MAX_PUSH_BYTES))
    if command is Command.SNAPSHOT_REQUEST:
        return SnapshotRequestMessage(_parse(SnapshotRequest, frames[2], 2, MAX_HEADER_BYTES))
    return ReplyMessage(command, _parse(Reply, frames[2], 2, MAX_HEADER_BYTES))


def _parse(model: type[_M], raw: Buffer, index: int, max_bytes: int) -> _M:
    if len(raw) > max_bytes:
        raise DecodeError(index, f"{model.__name__} JSON is {len(raw)} bytes, limit {max_bytes}")
    try:
        return model.model_validate_json(bytes(raw), context=FROM_WIRE)  # newer agents' extra health fields
    except ValidationError as exc:
        raise DecodeError(index, f"{model.__name__} is not valid: {first_error(exc)}") from None


def _decode_event(frames: Sequence[Buffer], limits: Limits) -> EventMessage:
    if len(frames) < FIXED_EVENT_FRAMES:
        raise DecodeError(None, f"EVENT needs at least {FIXED_EVENT_FRAMES} frames, got {len(frames)}")
    header = _parse(EventHeader, frames[2], 2, MAX_HEADER_BYTES)
    try:
        return _decode_event_body(frames, header, limits)
    except DecodeError as exc:
        raise DecodeError(exc.frame, exc.detail, event_id=header.event_id, seq=header.seq) from None


def _decode_event_body(frames: Sequence[Buffer], header: EventHeader, limits: Limits) -> EventMessage:
    n_media = len(frames) - FIXED_EVENT_FRAMES
    if n_media != len(header.media):
        raise DecodeError(None, f"header lists {len(header.media)} media, message has {n_media} media frames")
    total = sum(len(f) for f in frames)
    if total > limits.max_event_bytes:
        raise DecodeError(None, f"event is {total} bytes, limit {limits.max_event_bytes}")
    if len(frames[3]) != header.metadata_size:
        raise DecodeError(3, f"metadata is {len(frames[3])} bytes, header says {header.metadata_size}")
    event = _parse(ProblemEvent, frames[3], 3, MAX_METADATA_BYTES)
    if (event.device_id, event.event_id) != (header.device_id, header.event_id):
        raise DecodeError(3, f"metadata is for {event.device_id}/{event.event_id}, "
                          f"header for {header.device_id}/{header.event_id}")
    if [m.name for m in header.media] != [r.name for r in event.media]:
        raise DecodeError(2, "header media names differ from the event's media list")
    media: dict[str, Buffer] = {}
    for i, (size, ref) in enumerate(zip(header.media, event.media, strict=True)):
        data = frames[4 + i]
        if len(data) > limits.max_media_bytes:
            raise DecodeError(4 + i, f"media {ref.name!r} is {len(data)} bytes, limit {limits.max_media_bytes}")
        if not len(data) == size.size == ref.size:
            raise DecodeError(4 + i, f"media {ref.name!r} is {len(data)} bytes, header says {size.size}, "
                              f"metadata says {ref.size}")
        media[ref.name] = data
    manifest_raw, signature = frames[4 + n_media], frames[5 + n_media]
    if len(manifest_raw) > MAX_MANIFEST_BYTES:
        raise DecodeError(4 + n_media, f"manifest is {len(manifest_raw)} bytes, limit {MAX_MANIFEST_BYTES}")
    if sha256_hex(manifest_raw) != header.manifest_sha256:
        raise DecodeError(4 + n_media, "manifest SHA-256 differs from the header")
    try:
        manifest = EvidenceManifest.from_bytes(manifest_raw)
    except ManifestError as exc:
        raise DecodeError(4 + n_media, str(exc)) from None
    if manifest.seq != header.seq:
        raise DecodeError(4 + n_media, f"manifest seq {manifest.seq} differs from header seq {header.seq}")
    if len(signature) != SIGNATURE_BYTES:
        raise DecodeError(5 + n_media, f"signature is {len(signature)} bytes, expected {SIGNATURE_BYTES}")
    return EventMessage(header=header, event=event, metadata=frames[3], media=media, manifest=manifest,
                        manifest_bytes=manifest_raw, signature=signature)

