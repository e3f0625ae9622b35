"""The enrollment bundle the hub issues to one device (`cityeye hub enroll DEVICE`).

It holds two separate secrets: the CURVE key pair that authenticates the transport, and the
Ed25519 key that signs evidence manifests (so a stolen transport key alone can't forge evidence
that verifies later, and the keys can be rotated independently). The file is written 0600.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import Field

from protocol.messages import WireModel

Z85_KEY = r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$"


class DeviceBundle(WireModel):
    v: int = 1
    device_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    endpoint: str = Field(description="hub ingest endpoint, e.g. tcp://hub.example:7800")
    hub_curve_public: str = Field(pattern=Z85_KEY, description="hub CURVE public key (Z85)")
    curve_public: str = Field(pattern=Z85_KEY)
    curve_secret: str = Field(pattern=Z85_KEY)
    sign_secret: str = Field(pattern=r"^[0-9a-f]{64}$", description="Ed25519 seed (hex)")
    sign_public: str = Field(pattern=r"^[0-9a-f]{64}$")
    hub_sign_public: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                                        description="hub Ed25519 key (hex) that signs config pushes; "
                                        "bundles without it accept no push")
    api_url: str | None = Field(default=None, pattern=r"^https?://", max_length=2000,
                                description="the hub's HTTP(S) API as the device reaches it: detector files "
                                "announced in model pushes are downloaded from there with the device's key")

    def save(self, path: Path) -> None:
        """Write the bundle readable by its owner only; the secrets never touch a wider-mode file."""
        write_private(path, json.dumps(self.model_dump(), indent=2).encode())

    @classmethod
    def load(cls, path: Path) -> DeviceBundle:
        return cls.model_validate_json(path.read_bytes())


def write_private(path: Path, data: bytes) -> None:
    """Atomically write a 0600 file (created with that mode, never chmod-ed after the fact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
