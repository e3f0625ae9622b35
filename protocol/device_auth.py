"""Device-signed HTTP requests: how an agent fetches a model file from the hub with its enrolled key.

A device has no password or token on the hub, but it has the Ed25519 key it signs evidence with,
whose public half the hub enrolled. A request carries three headers: the device id, the time, and the
device's signature of `cityeye-device-request/1\\n<METHOD>\\n<path>\\n<device id>\\n<unix time>`. The hub
checks the signature with the device's current key, refuses unknown and revoked devices, and refuses a
time more than `MAX_SKEW_S` from its own clock (so a captured request is only good for a few minutes,
and only for the one path it names). No secret crosses the wire, and the same code on both sides
builds the signed bytes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from protocol.manifest import ManifestError, Signer, verify

DEVICE_HEADER = "X-CityEye-Device"
TIME_HEADER = "X-CityEye-Time"
SIGNATURE_HEADER = "X-CityEye-Signature"
MAX_SKEW_S = 300


class DeviceAuthError(ValueError):
    """A device request that does not authenticate; the message says which header and why."""


def request_bytes(method: str, path: str, device_id: str, at: int) -> bytes:
    """What the device signs. `path` is the URL path only (no host, no query)."""
    return f"cityeye-device-request/1\n{method.upper()}\n{path}\n{device_id}\n{at}".encode()


def sign_request(signer: Signer, device_id: str, method: str, path: str, at: float | None = None) -> dict[str, str]:
    """The headers that authenticate one request of `device_id` for `method path`."""
    stamp = int(time.time() if at is None else at)
    signature = signer.sign(request_bytes(method, path, device_id, stamp))
    return {DEVICE_HEADER: device_id, TIME_HEADER: str(stamp), SIGNATURE_HEADER: signature.hex()}


def claimed_device(headers: Mapping[str, str]) -> str:
    device_id = headers.get(DEVICE_HEADER) or headers.get(DEVICE_HEADER.lower())
    if not device_id:
        raise DeviceAuthError(f"{DEVICE_HEADER}: missing (a device request names its device)")
    return device_id


def check_request(headers: Mapping[str, str], method: str, path: str, public_hex: str,
                  now: float | None = None) -> str:
    """The device id when the headers carry a fresh signature of this request by `public_hex`."""
    device_id = claimed_device(headers)
    raw_time = headers.get(TIME_HEADER) or headers.get(TIME_HEADER.lower()) or ""
    raw_sig = headers.get(SIGNATURE_HEADER) or headers.get(SIGNATURE_HEADER.lower()) or ""
    try:
        at = int(raw_time)
    except ValueError as exc:
        raise DeviceAuthError(f"{TIME_HEADER}: expected unix seconds, got {raw_time[:32]!r}") from exc
    skew = abs((time.time() if now is None else now) - at)
    if skew > MAX_SKEW_S:
        raise DeviceAuthError(f"{TIME_HEADER}: {skew:.0f} s from the hub's clock (at most {MAX_SKEW_S} s): "
                              "check the device's clock")
    try:
        signature = bytes.fromhex(raw_sig)
        verify(public_hex, request_bytes(method, path, device_id, at), signature)
    except (ValueError, ManifestError) as exc:
        raise DeviceAuthError(f"{SIGNATURE_HEADER}: not the device's signature of this request") from exc
    return device_id
