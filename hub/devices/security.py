"""Hub keys, device enrollment and revocation, the ZAP handler, and evidence re-verification.

Re-enrolment (`--replace`) and revocation end a device's key in the store's key history rather than
forgetting it: `verify_stored` checks each event with the key in force when the hub received it
(hub.device_keys), so evidence signed before a key rotation stays verifiable.

Security is on by default: the hub's ROUTER is a CURVE server and this module's ZAP handler admits
only enrolled, non-revoked device keys, answering with User-Id = device id so every message can
be tied to a device. Revocation is checked again on every message (a live connection of a revoked
device gets nothing through), not only at the next handshake.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import zmq
from zmq.utils import z85

from hub.devices.keys import KeyPeriod, check_signature
from hub.storage.fsync import sync_path
from protocol.bundle import DeviceBundle, write_private
from protocol.manifest import (
    EvidenceManifest,
    ManifestError,
    Signer,
    generate_signing_key,
    sha256_hex,
)

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"cityeye"
HUB_KEY_FILE = "keys/hub_curve.json"
HUB_SIGN_KEY_FILE = "keys/hub_sign.json"


class DeviceRecord(Protocol):
    device_id: str
    curve_public_key: str
    sign_public_key: str
    revoked: bool


class DeviceRegistry(Protocol):
    """What security needs from hub.store.Store."""

    def add_device(self, device_id: str, curve_public_key: str, sign_public_key: str, *,
                   replace: bool = False) -> Any: ...
    def revoke_device(self, device_id: str) -> Any: ...
    def get_device(self, device_id: str) -> DeviceRecord | None: ...
    def list_devices(self) -> Iterable[DeviceRecord]: ...


class EnrollmentError(ValueError):
    pass


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
    """The hub's own Ed25519 key: it signs each evidence package it exports (hub.evidence_package), so
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


# --- enrollment ---

def enroll_device(registry: DeviceRegistry, data_dir: Path, device_id: str, endpoint: str, *,
                  replace: bool = False) -> DeviceBundle:
    """Register a device with fresh keys and return its bundle (the only copy of its secrets)."""
    existing = registry.get_device(device_id)
    if existing is not None and not replace:
        state = "revoked" if existing.revoked else "enrolled"
        raise EnrollmentError(f"device {device_id!r} is already {state}; use --replace to issue new keys "
                              "(the old bundle stops working)")
    hub = HubKeys.load_or_create(data_dir)
    curve_public, curve_secret = zmq.curve_keypair()
    sign_secret, sign_public = generate_signing_key()
    bundle = DeviceBundle(device_id=device_id, endpoint=endpoint, hub_curve_public=hub.public,
                          curve_public=curve_public.decode(), curve_secret=curve_secret.decode(),
                          sign_secret=sign_secret, sign_public=sign_public)
    registry.add_device(device_id, bundle.curve_public, bundle.sign_public, replace=replace)
    return bundle


def revoke_device(registry: DeviceRegistry, device_id: str) -> None:
    if registry.get_device(device_id) is None:
        raise EnrollmentError(f"no device {device_id!r} is enrolled")
    registry.revoke_device(device_id)


# --- live view of the registry, shared by the ZAP handler and the ingest loop ---

class DeviceDirectory:
    """Cached device lookups, refreshed from the store every `refresh_s` so revocations made by
    another process (the CLI) take effect within that time on live connections."""

    MISS_RELOAD_S = 0.2  # an unknown device id in a message re-reads the registry at most this often

    def __init__(self, registry: DeviceRegistry, refresh_s: float = 1.0) -> None:
        self._registry = registry
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        self._loaded_at = -1e9
        self._by_id: dict[str, DeviceRecord] = {}
        self._by_curve: dict[str, DeviceRecord] = {}

    def _refresh(self, min_age_s: float | None = None) -> None:
        now = time.monotonic()
        if now - self._loaded_at < (self._refresh_s if min_age_s is None else min_age_s):
            return
        devices = list(self._registry.list_devices())
        self._by_id = {d.device_id: d for d in devices}
        self._by_curve = {d.curve_public_key: d for d in devices}
        self._loaded_at = now

    def by_curve_key(self, z85: str) -> DeviceRecord | None:
        with self._lock:
            self._refresh()
            if z85 not in self._by_curve:
                # A key just enrolled must get in at once. Handshakes cost the peer a CURVE
                # exchange each, so re-reading the registry on a miss can't be cheaply abused.
                self._refresh(min_age_s=0.0)
            return self._by_curve.get(z85)

    def active(self, device_id: str) -> DeviceRecord | None:
        """The device if enrolled and not revoked."""
        with self._lock:
            self._refresh()
            if device_id not in self._by_id:
                self._refresh(min_age_s=self.MISS_RELOAD_S)  # per message: rate-limited
            device = self._by_id.get(device_id)
            return None if device is None or device.revoked else device


class ZapHandler:
    """ZAP (RFC 27) for CURVE: 200 + User-Id=device id for an enrolled, non-revoked key; else 400.

    Bind it before the CURVE server socket accepts connections; it must share that socket's context.
    """

    def __init__(self, context: zmq.Context, directory: DeviceDirectory) -> None:
        self._directory = directory
        self._sock = context.socket(zmq.REP)
        self._sock.linger = 0
        self._sock.bind(ZAP_ENDPOINT)
        self.refused = 0
        self.accepted = 0

    def serve(self, stop_event: threading.Event, poll_ms: int = 200) -> None:
        try:
            while not stop_event.is_set():
                if self._sock.poll(poll_ms):
                    request = self._sock.recv_multipart()
                    try:
                        answer = self._answer(request)
                    except Exception:  # the handler must live on: a dead ZAP thread hangs every handshake
                        log.exception("ZAP request failed")
                        answer = [b"1.0", request[1] if len(request) > 1 else b"", b"500", b"internal error",
                                  b"", b""]
                    self._sock.send_multipart(answer)
        finally:
            self._sock.close(linger=0)

    def _answer(self, request: list[bytes]) -> list[bytes]:
        if len(request) < 6:
            return [b"1.0", b"", b"500", b"malformed ZAP request", b"", b""]
        version, request_id, domain, address, _routing, mechanism = request[:6]
        credentials = request[6:]

        def reply(code: bytes, text: str, user: str = "") -> list[bytes]:
            return [b"1.0", request_id, code, text.encode(), user.encode(), b""]

        if version != b"1.0" or mechanism != b"CURVE" or domain != ZAP_DOMAIN or len(credentials) != 1:
            self.refused += 1
            return reply(b"400", "only CURVE in the cityeye domain")
        key = z85.encode(credentials[0]).decode()
        device = self._directory.by_curve_key(key)
        if device is None or device.revoked:
            self.refused += 1
            why = "revoked" if device is not None else "not enrolled"
            log.warning("refused CURVE key %s from %s: %s", key, address.decode(errors="replace"), why)
            return reply(b"400", f"device key {why}")
        self.accepted += 1
        return reply(b"200", "OK", device.device_id)


# --- re-verification of stored evidence (cityeye hub verify) ---

@dataclass(frozen=True)
class VerifyResult:
    event_id: str
    device_id: str
    ok: bool
    problems: list[str]


def verify_stored(device: DeviceRecord | None, event_id: str, manifest: bytes, signature: bytes,
                  media: dict[str, bytes | None], *, keys: Sequence[KeyPeriod],
                  received_at: datetime | None) -> VerifyResult:
    """Re-check a stored event: its signature with the device's key in force when the hub received it
    (`keys`: the device's key history, hub.device_keys), and every evidence file's hash."""
    problems: list[str] = []
    try:
        parsed = EvidenceManifest.from_bytes(manifest)
    except ManifestError as exc:
        return VerifyResult(event_id, "?", False, [str(exc)])
    if device is None:
        problems.append(f"device {parsed.device_id} is not in the registry: signature can't be checked")
    else:
        check = check_signature(keys, manifest, signature, received_at, device.device_id)
        problems += check.problems + [f"note: {n}" for n in check.notes]
        if check.key is not None and check.key.valid_until is not None and not check.notes:
            problems.append(f"note: signed with an earlier key of device {device.device_id}: {check.key.describe()}")
        if device.revoked:
            problems.append(f"note: device {device.device_id} is revoked now (signature made before)")
    for entry in parsed.media:
        data = media.get(entry.name)
        if data is None:
            problems.append(f"media {entry.name}: file missing from the evidence store")
        elif sha256_hex(data) != entry.sha256:
            problems.append(f"media {entry.name}: SHA-256 differs from the signed manifest")
    ok = not [p for p in problems if not p.startswith("note:")]
    return VerifyResult(event_id, parsed.device_id, ok, problems)


def verify_event(store: Any, event_id: str, device_id: str | None = None) -> VerifyResult:
    """Re-verify one stored event (hub.store.Store): its manifest, signature and evidence files."""
    record = store.get_event(event_id, device_id)
    if record is None:
        return VerifyResult(event_id, device_id or "?", False, [f"no stored event {event_id!r}"])
    media: dict[str, bytes | None] = {}
    for ref in record.media:
        try:
            media[ref.name] = store.evidence_bytes(ref.sha256)
        except FileNotFoundError:
            media[ref.name] = None
    keys = [KeyPeriod(k.sign_public_key, k.valid_from, k.valid_until, k.ended)
            for k in store.device_keys(record.device_id)]
    result = verify_stored(store.get_device(record.device_id), event_id, record.manifest, record.signature,
                           media, keys=keys, received_at=record.received_at)
    try:
        signed = EvidenceManifest.from_bytes(record.manifest)
    except ManifestError:
        return result  # verify_stored has already reported the unreadable manifest
    problems = _record_problems(store, record, signed)
    if problems:
        return VerifyResult(event_id, result.device_id, False, [*result.problems, *problems])
    return result


def _record_problems(store: Any, record: Any, signed: EvidenceManifest) -> list[str]:
    """What in the stored event row disagrees with its signed manifest: the event's identity, its
    metadata (the JSON the hub keeps verbatim as the device signed it) and its media list. A row
    edited in the database after ingest (class, times, place) shows up here."""
    problems = []
    if (signed.device_id, signed.event_id) != (record.device_id, record.event_id):
        problems.append(f"stored as {record.device_id}/{record.event_id} but the signed manifest is for "
                        f"{signed.device_id}/{signed.event_id}")
    metadata = _stored_metadata(store, record.device_id, record.event_id)
    if metadata is None or sha256_hex(metadata) != signed.metadata_sha256:
        problems.append("stored event metadata differs from the signed manifest (metadata SHA-256): the "
                        "event row was changed after the device signed it")
    if [m.name for m in record.media] != [m.name for m in signed.media]:
        problems.append("stored media list differs from the signed manifest")
    return problems


def _stored_metadata(store: Any, device_id: str, event_id: str) -> bytes | None:
    """The event's metadata JSON exactly as stored (the payload column's text, not a re-serialisation)."""
    from sqlalchemy import Text, cast, select

    from hub.storage import db

    e = db.events
    query = select(cast(e.c.payload, Text)).where(e.c.device_id == device_id, e.c.event_id == event_id)
    with store.engine.connect() as conn:
        text = conn.execute(query).scalar()
    return None if text is None else str(text).encode()


def event_ids_of_case(store: Any, case_id: str) -> list[tuple[str, str]]:
    """(device id, event id) of every edge event attached to a case, oldest first."""
    from sqlalchemy import select

    from hub.storage import db

    e = db.events
    query = select(e.c.device_id, e.c.event_id).where(e.c.case_id == case_id, e.c.source == "edge")
    with store.engine.connect() as conn:
        return [(r.device_id, r.event_id) for r in conn.execute(query.order_by(e.c.id))]
