"""A device's signing keys over time, and which of them checks a stored event (pure: no database, no network).

Re-enrolment (`cityeye hub enroll DEVICE --replace`) gives a device a new Ed25519 key. The hub keeps every
key with the period it accepted it (the `device_keys` table; devices.json in an evidence package), so
evidence signed before a key rotation still verifies years later. An event is checked with the key that
was in force when the hub RECEIVED it (events.received_at), not with any key the device ever had: a key
that verifies an event received outside its period is reported, not accepted.

One tolerance, KEY_HANDOVER_S: a running hub checks signatures against a device directory it re-reads
about once a second (IngestConfig.device_refresh_s) and commits events in bursts after that, so an event
signed with the previous key can be stored shortly after the change. Within that window the previous key
is accepted, with a note saying so.

Used by `cityeye hub verify` (hub.devices.verify) and by the offline package verifier (hub.evidence.package),
so it imports only the protocol's signature check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from protocol.manifest import ManifestError, verify

KEY_HANDOVER_S = 60.0
_HANDOVER = timedelta(seconds=KEY_HANDOVER_S)


@dataclass(frozen=True)
class KeyPeriod:
    """One signing key of a device and when the hub accepted it: [valid_from, valid_until)."""

    sign_public_key: str  # Ed25519, hex
    valid_from: datetime | None  # None: unknown (a version 1 evidence package names one key, no period)
    valid_until: datetime | None = None  # None: still in force
    ended: str | None = None  # why it ended: "replaced" or "revoked"

    def covers(self, at: datetime) -> bool:
        started = self.valid_from is None or self.valid_from <= at
        return started and (self.valid_until is None or at < self.valid_until)

    def just_ended(self, at: datetime) -> bool:
        """Ended at most KEY_HANDOVER_S before `at` (see the module docstring)."""
        return self.valid_until is not None and self.valid_until <= at < self.valid_until + _HANDOVER

    def describe(self) -> str:
        start = iso(self.valid_from) if self.valid_from else "an unknown time"
        end = f"until {iso(self.valid_until)}, {self.ended or 'ended'}" if self.valid_until else "until now"
        return f"{self.sign_public_key} (in force from {start} {end})"


@dataclass
class SignatureCheck:
    """Which key verified the signature (None: none did), what is wrong, and what the reader should know."""

    key: KeyPeriod | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.key is not None and not self.problems


def check_signature(keys: Sequence[KeyPeriod], manifest: bytes, signature: bytes, received_at: datetime | None,
                    device_id: str) -> SignatureCheck:
    """Verify `signature` of `manifest` with the key of `device_id` in force at `received_at`.

    `keys`: all the device's known keys. `received_at` None (unknown) is accepted only with a single key."""
    out = SignatureCheck()
    if not keys:
        out.problems.append(f"device {device_id} has no known signing key: the signature can't be checked")
        return out
    if received_at is None:
        if len(keys) > 1:
            out.problems.append(f"the time the hub received the event is unknown: can't tell which of device "
                                f"{device_id}'s {len(keys)} keys was in force")
            return out
        in_force = list(keys)
    else:
        in_force = [k for k in keys if k.covers(received_at)]
    first_error: str | None = None
    for key in in_force:
        error = _verify(key, manifest, signature)
        if error is None:
            out.key = key
            return out
        first_error = first_error or error
    if received_at is not None:
        for key in keys:
            if key.just_ended(received_at) and _verify(key, manifest, signature) is None:
                out.key = key
                late = (received_at - key.valid_until).total_seconds()  # type: ignore[operator]
                out.notes.append(f"signed with device {device_id}'s previous key {key.sign_public_key}, "
                                 f"{key.ended or 'ended'} {late:.1f} s before the hub received the event at "
                                 f"{iso(received_at)} (a running hub takes up to {KEY_HANDOVER_S:.0f} s to "
                                 "switch keys)")
                return out
        other = next((k for k in keys if k not in in_force and _verify(k, manifest, signature) is None), None)
        if other is not None:
            held = "no longer held" if other.valid_until is not None and other.valid_until <= received_at \
                else "did not yet hold"
            out.problems.append(f"signed with a key device {device_id} {held} when the hub received the event at "
                                f"{iso(received_at)}: {other.describe()}")
            return out
        if not in_force:
            out.problems.append(f"no key of device {device_id} was in force when the hub received the event at "
                                f"{iso(received_at)}, and none of its {len(keys)} known key(s) verifies the "
                                "signature")
            return out
    out.problems.append(first_error or "manifest signature does not verify with the device's key")
    return out


def _verify(key: KeyPeriod, manifest: bytes, signature: bytes) -> str | None:
    try:
        verify(key.sign_public_key, manifest, signature)
    except ManifestError as exc:
        return str(exc)
    return None


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
