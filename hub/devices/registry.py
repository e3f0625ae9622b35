"""What the devices feature needs from the store: device records and the registry's writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol


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
