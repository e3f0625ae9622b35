"""protocol/model_release.py: a device runs only the bytes whose hash the hub signed."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from protocol.model_release import MAX_INLINE_BYTES, ModelRelease, ReleaseError, inline_release, verified_content


def test_inline_release_round_trips_and_checks_its_bytes():
    content = b'{"format": "cityeye-fewshot/1"}'
    release = inline_release("vtest-cones", 3, "fewshot", content, backbone_sha256="ab" * 32)
    again = ModelRelease.model_validate_json(release.model_dump_json())
    assert verified_content(again) == content and again.suffix == ".json"
    tampered = again.model_copy(update={"content_b64": base64.b64encode(content.replace(b"1", b"2")).decode()})
    with pytest.raises(ReleaseError, match="sha256 .* is not the .* the hub signed"):
        verified_content(tampered)
    with pytest.raises(ReleaseError, match="bytes, the hub signed"):
        verified_content(again.model_copy(update={"content_b64": base64.b64encode(content + b" ").decode()}))


def test_fetched_release_checks_what_came():
    content = b"onnx bytes"
    inline = inline_release("det", 1, "onnx", content)
    fetched = ModelRelease(**{**inline.model_dump(), "content_b64": None, "url": "https://hub/models/1/file"})
    with pytest.raises(ReleaseError, match="fetch https://hub/models/1/file first"):
        verified_content(fetched)
    assert verified_content(fetched, content) == content
    with pytest.raises(ReleaseError, match="sha256"):
        verified_content(fetched, b"onnx bytez")


def test_release_carries_exactly_one_way_and_inline_is_small():
    with pytest.raises(ValidationError, match="exactly one of content_b64 and url"):
        ModelRelease(name="x", release_id=1, kind="onnx", sha256="0" * 64, size=1)
    with pytest.raises(ReleaseError, match="too large to send inline"):
        inline_release("x", 1, "onnx", b"\0" * (MAX_INLINE_BYTES + 1))
