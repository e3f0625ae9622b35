"""PUSH / PUSH_RESULT frames: the hub's signature covers the exact payload; bad framing names the frame."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from protocol.codec import DecodeError, PushMessage, PushResultMessage, decode, encode_push, encode_push_result
from protocol.manifest import Signer, generate_signing_key
from protocol.push import Push, PushKind, PushRefused, PushResult, open_push, sign_push

SECRET, PUBLIC = generate_signing_key()


def a_push(**kw: object) -> Push:
    fields = {"device_id": "dev1", "kind": PushKind.CAMERA_CONFIG, "target": "cam1", "version": 2,
              "issued_at": datetime.now(UTC), "issued_by": "张三", "body": {"zones": []}, **kw}
    return Push.model_validate(fields)


def test_round_trip_and_signature() -> None:
    push = a_push()
    msg = decode(encode_push(*sign_push(push, Signer(SECRET))))
    assert isinstance(msg, PushMessage) and msg.push == push
    assert open_push(bytes(msg.payload), bytes(msg.signature), PUBLIC, "dev1") == push
    tampered = bytes(msg.payload).replace(b'"version":2', b'"version":3')
    with pytest.raises(PushRefused, match="does not verify"):
        open_push(tampered, bytes(msg.signature), PUBLIC, "dev1")


def test_model_rollout_uses_the_same_message() -> None:
    push = a_push(kind=PushKind.MODEL, target="detector", body={"name": "cones-v2", "sha256": "0" * 64})
    msg = decode(encode_push(*sign_push(push, Signer(SECRET))))
    assert isinstance(msg, PushMessage) and msg.push.kind is PushKind.MODEL


def test_result_round_trip() -> None:
    result = PushResult(device_id="dev1", kind=PushKind.CAMERA_CONFIG, target="cam1", version=2, accepted=False,
                        error="zones[0].polygon: outside 0-1")
    msg = decode(encode_push_result(result))
    assert isinstance(msg, PushResultMessage) and msg.result == result


def test_bad_frames_are_named() -> None:
    payload, signature = sign_push(a_push(), Signer(SECRET))
    with pytest.raises(DecodeError, match="frame 3: signature is 10 bytes"):
        decode(encode_push(payload, b"x" * 10))
    with pytest.raises(DecodeError, match="PUSH needs 4 frames"):
        decode(encode_push(payload, signature)[:3])
    with pytest.raises(DecodeError, match="frame 2: Push is not valid"):
        decode(encode_push(payload.replace(b'"version":2', b'"version":0'), signature))
