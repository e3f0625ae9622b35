"""Wire format: encode/decode round trip, and every malformed frame refused with its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from protocol.codec import (
    PROTOCOL_ID,
    Command,
    DecodeError,
    EventMessage,
    HeartbeatMessage,
    Limits,
    Reply,
    ReplyMessage,
    decode,
    encode_ack,
    encode_heartbeat,
    encode_nack,
    seal_event,
)
from protocol.manifest import (
    GENESIS_HASH,
    EvidenceManifest,
    ManifestError,
    Signer,
    check_manifest_matches,
    generate_signing_key,
    verify,
)
from protocol.messages import CameraHealth, Heartbeat
from tests.delivery_support import make_event, small_jpeg

SECRET, PUBLIC = generate_signing_key()


def sealed_frames(n: int = 1) -> list[bytes]:
    event, media = make_event("dev1", n, small_jpeg(n))
    return seal_event(event, media, Signer(SECRET), seq=n, prev_manifest_sha256=GENESIS_HASH).frames


def test_event_round_trip_and_signature() -> None:
    frames = sealed_frames()
    assert frames[0] == PROTOCOL_ID and frames[1] == b"EVENT" and len(frames) == 7
    msg = decode(frames)
    assert isinstance(msg, EventMessage)
    assert msg.event.event_id == "ev-dev1-000001" and msg.header.seq == 1
    assert bytes(msg.media["snapshot.jpg"]) == frames[4]  # raw bytes, no base64
    check_manifest_matches(msg.manifest, msg.event, msg.metadata, msg.media)
    verify(PUBLIC, msg.manifest_bytes, msg.signature)
    assert msg.manifest.prev_manifest_sha256 == GENESIS_HASH


def test_decode_accepts_memoryviews() -> None:
    msg = decode([memoryview(f) for f in sealed_frames()])
    assert isinstance(msg, EventMessage)


def test_other_key_signature_fails() -> None:
    msg = decode(sealed_frames())
    assert isinstance(msg, EventMessage)
    _, other_public = generate_signing_key()
    with pytest.raises(ManifestError, match="does not verify"):
        verify(other_public, msg.manifest_bytes, msg.signature)


def test_tampered_jpeg_fails_manifest_check() -> None:
    frames = sealed_frames()
    jpeg = bytearray(frames[4])
    jpeg[100] ^= 0xFF
    frames[4] = bytes(jpeg)
    msg = decode(frames)  # sizes still agree: structurally fine
    assert isinstance(msg, EventMessage)
    with pytest.raises(ManifestError, match=r"snapshot\.jpg.*SHA-256"):
        check_manifest_matches(msg.manifest, msg.event, msg.metadata, msg.media)


def test_heartbeat_and_replies_round_trip() -> None:
    hb = Heartbeat(device_id="dev1", sent_at=datetime.now(UTC), spool_events=3)
    assert isinstance(msg := decode(encode_heartbeat(hb)), HeartbeatMessage) and msg.heartbeat == hb
    ack = decode(encode_ack(Reply(event_id="ev-00000001", seq=4, duplicate=True)))
    assert isinstance(ack, ReplyMessage) and ack.command is Command.ACK and ack.reply.duplicate
    nack = decode(encode_nack(Reply(event_id=None, reason="bad")))
    assert isinstance(nack, ReplyMessage) and nack.command is Command.NACK and nack.reply.reason == "bad"


def newer_agent_heartbeat(**camera_fields: object) -> list[bytes]:
    """A heartbeat as a newer agent sends it: health fields this hub's schema does not know."""
    hb = Heartbeat(device_id="dev1", sent_at=datetime.now(UTC),
                   cameras=[CameraHealth(camera_id="cam1", online=True, decode_fps=9.5)])
    body = json.loads(hb.model_dump_json())
    body["cameras"][0].update({"gop_s": 2.0, "lens_fogged": False, **camera_fields})
    body["gpu_temp_c"] = 61
    return [PROTOCOL_ID, b"HEARTBEAT", json.dumps(body).encode()]


def test_a_newer_agents_health_fields_are_set_aside_not_refused() -> None:
    msg = decode(newer_agent_heartbeat())
    assert isinstance(msg, HeartbeatMessage)
    hb, cam = msg.heartbeat, msg.heartbeat.cameras[0]
    assert hb.unknown_fields == ("gpu_temp_c",) and cam.unknown_fields == ("gop_s", "lens_fogged")
    assert cam.online and cam.decode_fps == 9.5
    assert "unknown_fields" not in hb.model_dump(mode="json") and "gop_s" not in cam.model_dump(mode="json")


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("decode_fps", -1, "decode_fps"), ("online", "maybe", "online"), ("camera_id", "a b", "camera_id")])
def test_known_health_fields_are_still_checked_beside_unknown_ones(field: str, value: object, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason) as info:
        decode(newer_agent_heartbeat(**{field: value}))
    assert info.value.frame == 2


def test_an_unknown_health_field_built_in_code_is_still_an_error() -> None:
    with pytest.raises(ValidationError, match="gop_s"):
        CameraHealth.model_validate({"camera_id": "cam1", "online": True, "gop_s": 2.0})


def _mutate(index: int, value: bytes) -> list[bytes]:
    frames = sealed_frames()
    frames[index] = value
    return frames


@pytest.mark.parametrize(
    ("frames", "frame", "reason"),
    [
        ([b"CITYEYE/1"], None, "at least 2 frames"),
        (_mutate(0, b"CITYEYE/9"), 0, "unknown protocol"),
        (_mutate(1, b"PICKLE"), 1, "unknown command"),
        (_mutate(2, b"{not json"), 2, "EventHeader is not valid"),
        (_mutate(3, b'{"v": 1}'), 3, "metadata is"),
        (_mutate(4, b"short"), 4, "media 'snapshot.jpg' is 5 bytes"),
        (_mutate(5, b"{}"), 5, "manifest SHA-256 differs"),
        (_mutate(6, b"x" * 10), 6, "signature is 10 bytes"),
        (sealed_frames()[:6], None, "header lists 1 media"),
        ([PROTOCOL_ID, b"HEARTBEAT", b"{}"], 2, "Heartbeat is not valid"),
        ([PROTOCOL_ID, b"ACK"], None, "needs 3 frames"),
    ],
)
def test_malformed_frames_are_refused_with_reason(frames: list[bytes], frame: int | None, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason) as info:
        decode(frames)
    assert info.value.frame == frame


def test_decode_error_carries_event_id_once_header_is_read() -> None:
    with pytest.raises(DecodeError) as info:
        decode(_mutate(6, b"x"))
    assert info.value.event_id == "ev-dev1-000001" and info.value.seq == 1


def test_size_limits() -> None:
    with pytest.raises(DecodeError, match="limit 100"):
        decode(sealed_frames(), Limits(max_media_bytes=10**6, max_event_bytes=100))
    with pytest.raises(DecodeError, match="limit 10"):
        decode(sealed_frames(), Limits(max_media_bytes=10, max_event_bytes=10**6))


def test_manifest_bytes_are_canonical() -> None:
    msg = decode(sealed_frames())
    assert isinstance(msg, EventMessage)
    again = EvidenceManifest.from_bytes(msg.manifest_bytes).to_bytes()
    assert again == bytes(msg.manifest_bytes)
