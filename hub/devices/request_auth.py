"""Who is asking: a device-signed HTTP request (protocol.device_auth) checked against the registry.

Only enrolled, unrevoked devices pass, with the signing key the registry holds now (a rotated-out key
no longer fetches anything).
"""

from __future__ import annotations

from collections.abc import Mapping

from hub.devices.registry import DeviceRegistry
from protocol.device_auth import DeviceAuthError, check_request, claimed_device


class DeviceRefused(DeviceAuthError):
    """The device is unknown or revoked (HTTP 403); a bad signature stays a DeviceAuthError (401)."""


def authenticate_device(registry: DeviceRegistry, headers: Mapping[str, str], method: str, path: str) -> str:
    device_id = claimed_device(headers)
    device = registry.get_device(device_id)
    if device is None:
        raise DeviceRefused(f"device {device_id!r} is not enrolled on this hub")
    if device.revoked:
        raise DeviceRefused(f"device {device_id!r} is revoked")
    return check_request(headers, method, path, device.sign_public_key)
