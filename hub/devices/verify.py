"""Re-verification of stored evidence (`cityeye hub verify`): each event's signature with the device's key
in force when the hub received it (protocol.key_history), and every evidence file's hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, select

from hub.devices.registry import DeviceRecord
from hub.storage import schema
from protocol.key_history import KeyPeriod, check_signature
from protocol.manifest import (
    EvidenceManifest,
    ManifestError,
    sha256_hex,
)

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
    (`keys`: the device's key history, protocol.key_history), and every evidence file's hash."""
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
    """Re-verify one stored event (hub.storage.store.Store): its manifest, signature and evidence files."""
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
    e = schema.events
    query = select(cast(e.c.payload, Text)).where(e.c.device_id == device_id, e.c.event_id == event_id)
    with store.engine.connect() as conn:
        text = conn.execute(query).scalar()
    return None if text is None else str(text).encode()


def event_ids_of_case(store: Any, case_id: str) -> list[tuple[str, str]]:
    """(device id, event id) of every edge event attached to a case, oldest first."""

    e = schema.events
    query = select(e.c.device_id, e.c.event_id).where(e.c.case_id == case_id, e.c.source == "edge")
    with store.engine.connect() as conn:
        return [(r.device_id, r.event_id) for r in conn.execute(query.order_by(e.c.id))]
