"""A model release: what the hub tells a device to run, and how the device gets the file.

It is the body of a model push (the hub-signed `Push` with kind `model` that config pushes use too),
so the hub's Ed25519 signature covers the file's sha256: a device runs only bytes whose hash the hub
signed, whichever way they came. Few-shot heads are small (kilobytes) and travel inline
(`content_b64`); detector ONNX files (megabytes) are fetched from the hub over HTTPS with the device's
credentials (`url`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Literal

from pydantic import Field, model_validator

from protocol.messages import WireModel

MAX_INLINE_BYTES = 128 * 1024  # a push stays well under its 256 KB limit


class ReleaseError(ValueError):
    """The release or its file is unusable; the message says which and why."""


class ModelRelease(WireModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="the model name events report")
    release_id: int = Field(ge=1, description="the hub registry's version id")
    kind: Literal["fewshot", "onnx"] = Field(description="a few-shot head file (.json) or a detector ONNX")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=1, le=512 * 1024 * 1024)
    backbone_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                                        description="fewshot: the detector it reads, which the device must have")
    content_b64: str | None = Field(default=None, description="the file inline (small files)")
    url: str | None = Field(default=None, max_length=2000, description="where to fetch it otherwise")

    @model_validator(mode="after")
    def _one_way(self) -> ModelRelease:
        if (self.content_b64 is None) == (self.url is None):
            raise ValueError("a release carries exactly one of content_b64 and url")
        return self

    @property
    def suffix(self) -> str:
        return ".json" if self.kind == "fewshot" else ".onnx"


def inline_release(name: str, release_id: int, kind: Literal["fewshot", "onnx"], content: bytes,
                   backbone_sha256: str | None = None) -> ModelRelease:
    if len(content) > MAX_INLINE_BYTES:
        raise ReleaseError(f"{len(content)} bytes is too large to send inline (limit {MAX_INLINE_BYTES}): use url")
    return ModelRelease(name=name, release_id=release_id, kind=kind, sha256=hashlib.sha256(content).hexdigest(),
                        size=len(content), backbone_sha256=backbone_sha256,
                        content_b64=base64.b64encode(content).decode())


def verified_content(release: ModelRelease, fetched: bytes | None = None) -> bytes:
    """The release's file: inline, or `fetched` from its url; checked against the signed size and sha256."""
    if release.content_b64 is not None:
        try:
            content = base64.b64decode(release.content_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ReleaseError(f"release {release.name}#{release.release_id}: content_b64 is not base64") from exc
    elif fetched is None:
        raise ReleaseError(f"release {release.name}#{release.release_id}: fetch {release.url} first")
    else:
        content = fetched
    if len(content) != release.size:
        raise ReleaseError(f"release {release.name}#{release.release_id}: {len(content)} bytes, "
                           f"the hub signed {release.size}")
    digest = hashlib.sha256(content).hexdigest()
    if digest != release.sha256:
        raise ReleaseError(f"release {release.name}#{release.release_id}: sha256 {digest[:12]}… is not the "
                           f"{release.sha256[:12]}… the hub signed")
    return content
