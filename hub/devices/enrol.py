"""Device enrolment (fresh keys, a bundle that is the only copy of its secrets) and revocation.

Re-enrolment (`--replace`) and revocation end a device's key in the store's key history rather than
forgetting it, so evidence signed before a key rotation stays verifiable (hub.devices.verify).
"""

from __future__ import annotations

from pathlib import Path

import zmq

from hub.devices.hubkeys import HubKeys, HubSigningKey
from hub.devices.registry import DeviceRegistry
from protocol.bundle import DeviceBundle
from protocol.manifest import (
    generate_signing_key,
)


class EnrollmentError(ValueError):
    pass


# --- enrollment ---

def enroll_device(registry: DeviceRegistry, data_dir: Path, device_id: str, endpoint: str, *,
                  replace: bool = False, api_url: str | None = None,
                  api_ca: str | None = None) -> DeviceBundle:
    """Register a device with fresh keys and return its bundle (the only copy of its secrets); `api_ca` is the
    PEM of the CA the device trusts for the hub's HTTPS (`api_url`)."""
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
                          sign_secret=sign_secret, sign_public=sign_public,
                          hub_sign_public=HubSigningKey.load_or_create(data_dir).public, api_url=api_url,
                          api_ca=api_ca)
    registry.add_device(device_id, bundle.curve_public, bundle.sign_public, replace=replace)
    return bundle


def revoke_device(registry: DeviceRegistry, device_id: str) -> None:
    if registry.get_device(device_id) is None:
        raise EnrollmentError(f"no device {device_id!r} is enrolled")
    registry.revoke_device(device_id)
