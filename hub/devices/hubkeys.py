"""The hub's own key files in its data dir: the CURVE key pair agents connect to (HubKeys) and the
Ed25519 key that signs evidence packages (HubSigningKey), each created once, even by processes starting together.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zmq

from hub.storage.fsync import sync_path
from protocol.bundle import write_private
from protocol.manifest import (
    Signer,
    generate_signing_key,
)

log = logging.getLogger(__name__)


HUB_KEY_FILE = "keys/hub_curve.json"
HUB_SIGN_KEY_FILE = "keys/hub_sign.json"

class HubKeyError(ValueError):
    """A hub key file that can't be used; the message names the file and what is wrong."""


# --- hub key pair ---

@dataclass(frozen=True)
class HubKeys:
    public: str  # Z85
    secret: str  # Z85

    @classmethod
    def load_or_create(cls, data_dir: Path) -> HubKeys:
        """The hub's CURVE key pair, made on first use; the file is 0600 in the hub data dir."""
        def make() -> dict[str, str]:
            public, secret = zmq.curve_keypair()
            return {"public": public.decode(), "secret": secret.decode()}

        raw = _load_or_create_secret(data_dir / HUB_KEY_FILE, make, "CURVE key pair")
        return cls(public=raw["public"], secret=raw["secret"])


class HubSigningKey:
    """The hub's own Ed25519 key: it signs each evidence package it exports (hub.evidence.package), so
    what only the hub vouches for (case record, device keys, uploaded photos) can't be changed unseen.
    Separate from the CURVE pair, which only secures transport; publish `public` (`cityeye hub keys`)."""

    def __init__(self, secret_hex: str) -> None:
        self._signer = Signer(secret_hex)
        self.public = self._signer.public_hex

    @classmethod
    def load_or_create(cls, data_dir: Path) -> HubSigningKey:
        def make() -> dict[str, str]:
            secret, public = generate_signing_key()
            return {"public": public, "secret": secret}

        path = data_dir / HUB_SIGN_KEY_FILE
        raw = _load_or_create_secret(path, make, "Ed25519 signing key")
        try:
            key = cls(raw["secret"])
        except (ValueError, TypeError) as exc:  # not hex, or not a 32-byte seed
            raise HubKeyError(f"{path}: 'secret' is not an Ed25519 seed in hex: {exc}") from None
        if key.public != raw["public"]:
            raise HubKeyError(f"{path}: 'public' is not the public key of 'secret'")
        return key

    def sign(self, message: bytes) -> bytes:
        return self._signer.sign(message)


def _load_or_create_secret(path: Path, make: Callable[[], dict[str, str]], what: str) -> dict[str, str]:
    """A 0600 JSON file of the hub's secrets, made on first use. Processes that start together (API,
    ingest workers, a CLI) all end up with the one file that landed first: it is linked into place,
    never replaced."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
        write_private(tmp, json.dumps(make()).encode())
        try:
            os.link(tmp, path)
            sync_path(str(path.parent), data_only=False)  # the new name survives a power cut too
            log.info("created the hub %s in %s", what, path)
        except FileExistsError:
            pass  # another process was first: use its key
        finally:
            tmp.unlink()
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by group/others; it holds the hub's secret %s", path, what)
    try:
        raw = json.loads(path.read_text())
        if not (isinstance(raw, dict) and isinstance(raw.get("public"), str) and isinstance(raw.get("secret"), str)):
            raise ValueError("expected an object with string fields 'public' and 'secret'")
    except ValueError as exc:
        raise HubKeyError(f"{path}: not a hub key file: {exc}") from None
    return raw
