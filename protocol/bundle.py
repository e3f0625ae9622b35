"""The enrollment bundle the hub issues to one device (`cityeye hub enroll DEVICE`).

It holds two separate secrets: the CURVE key pair that authenticates the transport, and the
Ed25519 key that signs evidence manifests (so a stolen transport key alone can't forge evidence
that verifies later, and the keys can be rotated independently). The file is written 0600.
"""

from __future__ import annotations

import json
import os
import ssl
from pathlib import Path

from pydantic import Field, field_validator

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
    api_ca: str | None = Field(default=None, max_length=200_000,
                               description="PEM of the CA(s) that sign the hub's HTTPS certificate (a bureau's "
                               "own CA); None: the system's trust store")

    @field_validator("api_ca")
    @classmethod
    def _ca_loads(cls, v: str | None) -> str | None:
        if v is not None:
            trust_context(v)  # ValueError saying why
        return v

    def save(self, path: Path) -> None:
        """Write the bundle readable by its owner only; the secrets never touch a wider-mode file."""
        write_private(path, json.dumps(self.model_dump(), indent=2).encode())

    @classmethod
    def load(cls, path: Path) -> DeviceBundle:
        return cls.model_validate_json(path.read_bytes())


def trust_context(ca_pem: str | None) -> ssl.SSLContext:
    """A client context that verifies the hub's certificate and host name against `ca_pem` (PEM text of CA
    certificates) or, without it, the system's trust store. ValueError when the PEM holds no certificate."""
    if ca_pem is None:
        return ssl.create_default_context()
    if "-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise ValueError("expected PEM CA certificate(s) (-----BEGIN CERTIFICATE-----)")
    try:
        return ssl.create_default_context(cadata=ca_pem)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"not a usable PEM CA certificate: {exc}") from None


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
