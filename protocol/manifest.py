"""The signed evidence manifest and the Ed25519 helpers both sides use.

A device signs one manifest per event: who, which event, its per-device sequence number, when,
the SHA-256 of the metadata JSON and of every media file, and the hash of its previous manifest
(a hash chain, so a device's history can't be silently rewritten). The hub keeps the exact
manifest bytes and the signature, so `cityeye hub verify` can re-check stored evidence later.

The manifest is canonical JSON (sorted keys, no spaces): the bytes signed are the bytes sent
and stored; nobody re-serialises before verifying.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from pydantic import Field, ValidationError, field_validator

from protocol.messages import MAX_MEDIA, PROTOCOL_VERSION, ProblemEvent, WireModel, _require_utc

SHA256_HEX = r"^[0-9a-f]{64}$"
# The first manifest of a device chains to this.
GENESIS_HASH = "0" * 64
SIGNATURE_BYTES = 64


class ManifestError(ValueError):
    """A manifest that can't be parsed, doesn't match its event, or whose signature is wrong."""


class ManifestMedia(WireModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    size: int = Field(ge=0)
    sha256: str = Field(pattern=SHA256_HEX)


class EvidenceManifest(WireModel):
    v: int = PROTOCOL_VERSION
    device_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    event_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    seq: int = Field(ge=1, description="per-device sequence number, strictly increasing")
    captured_at: datetime = Field(description="the event's observed_at")
    metadata_sha256: str = Field(pattern=SHA256_HEX, description="hash of the metadata JSON frame")
    media: list[ManifestMedia] = Field(default_factory=list, max_length=MAX_MEDIA)
    prev_manifest_sha256: str = Field(pattern=SHA256_HEX, description="hash of the previous manifest")

    _utc = field_validator("captured_at")(_require_utc)

    def to_bytes(self) -> bytes:
        """Canonical bytes: what is signed, sent and stored."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes | memoryview) -> EvidenceManifest:
        try:
            return cls.model_validate_json(bytes(raw))
        except ValidationError as exc:
            raise ManifestError(f"manifest is not valid: {first_error(exc)} ({exc.error_count()} error(s))") from exc


def first_error(exc: ValidationError) -> str:
    """'field.path: message' of the first error ('(root)' when it is about the whole document)."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(root)"
    return f"{where}: {err['msg']}"


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def build_manifest(event: ProblemEvent, metadata: bytes, media: Mapping[str, bytes | memoryview], *,
                   seq: int, prev_manifest_sha256: str) -> EvidenceManifest:
    """The manifest for `event`; `media` holds the bytes of each `event.media` entry by name."""
    entries = [ManifestMedia(name=ref.name, size=len(media[ref.name]), sha256=sha256_hex(media[ref.name]))
               for ref in event.media]
    return EvidenceManifest(device_id=event.device_id, event_id=event.event_id, seq=seq,
                            captured_at=event.observed_at, metadata_sha256=sha256_hex(metadata),
                            media=entries, prev_manifest_sha256=prev_manifest_sha256)


# --- Ed25519 keys: hex strings on disk and in the registry, raw bytes on the wire ---

def generate_signing_key() -> tuple[str, str]:
    """A new Ed25519 key pair as (secret seed hex, public key hex)."""
    key = SigningKey.generate()
    return key.encode().hex(), key.verify_key.encode().hex()


def verify(public_hex: str, message: bytes | memoryview, signature: bytes | memoryview) -> None:
    """Raise ManifestError unless `signature` is `public_hex`'s signature of `message`."""
    if len(signature) != SIGNATURE_BYTES:
        raise ManifestError(f"signature must be {SIGNATURE_BYTES} bytes, got {len(signature)}")
    try:
        VerifyKey(bytes.fromhex(public_hex)).verify(bytes(message), bytes(signature))
    except (BadSignatureError, ValueError) as exc:
        raise ManifestError("manifest signature does not verify with the device's key") from exc


class Signer:
    """Holds one device's signing key so the hot path doesn't re-parse the hex each time."""

    def __init__(self, secret_hex: str) -> None:
        self._key = SigningKey(bytes.fromhex(secret_hex))
        self.public_hex = self._key.verify_key.encode().hex()

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature


def check_manifest_matches(manifest: EvidenceManifest, event: ProblemEvent, metadata: bytes | memoryview,
                           media: Mapping[str, bytes | memoryview]) -> None:
    """Raise ManifestError if the manifest doesn't describe exactly this event, metadata and media."""
    if manifest.device_id != event.device_id or manifest.event_id != event.event_id:
        raise ManifestError(f"manifest is for {manifest.device_id}/{manifest.event_id}, "
                            f"event is {event.device_id}/{event.event_id}")
    if manifest.metadata_sha256 != sha256_hex(metadata):
        raise ManifestError("metadata SHA-256 differs from the manifest")
    names = [m.name for m in manifest.media]
    if names != [ref.name for ref in event.media]:
        raise ManifestError(f"manifest lists media {names}, event lists {[r.name for r in event.media]}")
    for entry in manifest.media:
        data = media.get(entry.name)
        if data is None:
            raise ManifestError(f"media {entry.name!r} is missing")
        if len(data) != entry.size:
            raise ManifestError(f"media {entry.name!r} is {len(data)} bytes, manifest says {entry.size}")
        if sha256_hex(data) != entry.sha256:
            raise ManifestError(f"media {entry.name!r} SHA-256 differs from the manifest")
