"""The ZAP handler: which CURVE clients may connect, and the live device directory it and ingest share.

Security is on by default: the hub's ROUTER is a CURVE server and this module's ZAP handler admits
only enrolled, non-revoked device keys, answering with User-Id = device id so every message can
be tied to a device. Revocation is checked again on every message (a live connection of a revoked
device gets nothing through), not only at the next handshake.
"""

from __future__ import annotations

import logging
import threading
import time

import zmq
from zmq.utils import z85

from hub.devices.registry import DeviceRecord, DeviceRegistry

log = logging.getLogger(__name__)


ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"cityeye"

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
