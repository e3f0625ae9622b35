"""Hub ingest: a CURVE ROUTER that checks, stores and ACKs evidence from edge agents.

Each EVENT goes through cheap checks first (version, framing, sizes, schema), then the manifest
hashes, the device's Ed25519 signature, the JPEGs, the per-device hash chain, and only then the
store. The ACK goes out after the store has committed; a duplicate is re-ACKed; what can never
succeed is NACKed with its reason; a store failure (transient) gets no reply so the agent resends.
No message from one peer can stop the loop: every failure is confined to that message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import zmq
from pydantic import BaseModel, ConfigDict, Field

from hub.security import ZAP_DOMAIN, DeviceDirectory, DeviceRegistry, HubKeys, ZapHandler
from protocol.codec import (
    DecodeError,
    EventMessage,
    HeartbeatMessage,
    Limits,
    Reply,
    ReplyMessage,
    decode,
    encode_ack,
    encode_nack,
)
from protocol.manifest import ManifestError, check_manifest_matches, sha256_hex, verify
from protocol.messages import Heartbeat, ProblemEvent

log = logging.getLogger(__name__)


class IngestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bind: str = Field(default="tcp://*:7800", description="ROUTER endpoint the agents connect to")
    data_dir: Path = Field(description="hub data dir; the CURVE key pair lives in keys/ under it")
    insecure: bool = Field(default=False, description="no CURVE/ZAP: anyone can connect. Lab use only")
    max_media_bytes: int = Field(default=16 * 1024**2, gt=0, description="one media file")
    max_event_bytes: int = Field(default=48 * 1024**2, gt=0, description="all frames of one event")
    check_jpeg: bool = Field(default=True, description="decode every JPEG (at 1/8 scale) before storing")
    zmq_heartbeat_ivl_ms: int = Field(default=15_000, gt=0)
    zmq_heartbeat_timeout_ms: int = Field(default=180_000, gt=0)
    device_refresh_s: float = Field(default=1.0, gt=0, description="how soon a revocation bites")
    poll_ms: int = Field(default=200, gt=0, le=1000)
    rcvhwm: int = Field(default=1000, gt=0)

    @property
    def limits(self) -> Limits:
        return Limits(max_media_bytes=self.max_media_bytes, max_event_bytes=self.max_event_bytes)


class IngestResultLike(Protocol):
    duplicate: bool
    case_id: str | None


class IngestStore(DeviceRegistry, Protocol):
    """The part of hub.store.Store that ingest uses."""

    def ingest_event(self, event: ProblemEvent, media: Mapping[str, bytes], *, manifest: bytes,
                     signature: bytes, seq: int) -> IngestResultLike: ...
    def record_heartbeat(self, hb: Heartbeat) -> Any: ...


class Rejected(Exception):
    """This event can never be accepted; the reason goes back in the NACK."""


@dataclass
class IngestStats:
    events: int = 0
    acked: int = 0
    duplicates: int = 0
    nacked: int = 0
    heartbeats: int = 0
    dropped_unauthorised: int = 0  # revoked/unknown User-Id on a live connection
    store_errors: int = 0
    unroutable_replies: int = 0
    last_nack: str = ""
    nack_reasons: dict[str, int] = field(default_factory=dict)


class IngestLoop:
    """The ingest loop; `run()` blocks until `stop_event` is set (checked every poll_ms)."""

    def __init__(self, config: IngestConfig, store: IngestStore, stop_event: threading.Event) -> None:
        self.config = config
        self.store = store
        self.stop_event = stop_event
        self.directory = DeviceDirectory(store, config.device_refresh_s)
        self.stats = IngestStats()
        self._chain: dict[str, tuple[int, str]] = {}  # device -> (last seq, its manifest hash)
        self.ready = threading.Event()  # set once bound: tests and `hub serve` wait on it

    def run(self) -> None:
        with zmq.Context() as ctx:
            zap_thread = None
            if not self.config.insecure:
                zap = ZapHandler(ctx, self.directory)
                zap_thread = threading.Thread(target=zap.serve, args=(self.stop_event,), name="zap",
                                              daemon=True)
                zap_thread.start()
            sock = self._bind(ctx)
            self.ready.set()
            try:
                self._loop(sock)
            finally:
                sock.close(linger=0)
                if zap_thread is not None:
                    zap_thread.join(2.0)

    def _bind(self, ctx: zmq.Context) -> zmq.Socket:
        cfg = self.config
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # unroutable replies raise instead of vanishing
        # Routing ids are libzmq-generated (agents must not pick them: one device could take over
        # another's replies); handover still makes any client-set id resolve to its newest link.
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        # Per frame: a media frame a bit over the app limit gets a NACK; far over, the link is cut.
        sock.setsockopt(zmq.MAXMSGSIZE, 2 * cfg.max_media_bytes)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, cfg.rcvhwm)
        sock.setsockopt(zmq.HEARTBEAT_IVL, cfg.zmq_heartbeat_ivl_ms)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, cfg.zmq_heartbeat_timeout_ms)
        sock.setsockopt(zmq.HEARTBEAT_TTL, cfg.zmq_heartbeat_timeout_ms)
        if cfg.insecure:
            log.warning("INSECURE ingest on %s: no CURVE, no ZAP; any peer may claim any device id "
                        "(signatures are still checked)", cfg.bind)
        else:
            keys = HubKeys.load_or_create(cfg.data_dir)
            sock.curve_server = True
            sock.curve_secretkey = keys.secret.encode()
            sock.curve_publickey = keys.public.encode()
            sock.zap_domain = ZAP_DOMAIN
            sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)  # no ZAP handler = nobody gets in
        sock.bind(cfg.bind)
        log.info("ingest listening on %s", sock.last_endpoint.decode())
        return sock

    def _loop(self, sock: zmq.Socket) -> None:
        while not self.stop_event.is_set():
            if not sock.poll(self.config.poll_ms):
                continue
            for _ in range(256):  # drain a burst, then re-check the stop event
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                reply = self._handle_safely(frames)
                if reply is not None:
                    self._send(sock, frames[0].bytes, reply)

    def _send(self, sock: zmq.Socket, routing_id: bytes, reply: list[bytes]) -> None:
        try:
            sock.send_multipart([routing_id, *reply], zmq.NOBLOCK)
        except (zmq.Again, zmq.ZMQError) as exc:  # peer gone (ROUTER_MANDATORY) or stuck: it resends
            self.stats.unroutable_replies += 1
            log.debug("reply not routable: %s", exc)

    def _handle_safely(self, frames: list[zmq.Frame]) -> list[bytes] | None:
        try:
            return self.handle(frames)
        except Exception:  # one bad message must not stop ingest for everyone
            self.stats.store_errors += 1
            log.exception("unexpected error handling a message; no reply, the agent will resend")
            return None

    def handle(self, frames: list[zmq.Frame]) -> list[bytes] | None:
        """One ROUTER message ([routing id, *body]) -> reply frames or None."""
        body = frames[1:]
        if not body:
            return None
        user_id = None if self.config.insecure else body[0].get("User-Id")
        if user_id is not None and self.directory.active(user_id) is None:
            self.stats.dropped_unauthorised += 1
            log.warning("dropped a message from revoked or unknown device %s", user_id)
            return None
        try:
            msg = decode([f.buffer for f in body], self.config.limits)
        except DecodeError as exc:
            return self._nack(exc.reason, exc.event_id, exc.seq)
        if isinstance(msg, HeartbeatMessage):
            return self._heartbeat(msg.heartbeat, user_id)
        if isinstance(msg, ReplyMessage):
            return self._nack(f"frame 1: {msg.command} is a hub reply, not accepted from agents", None, None)
        return self._event(msg, user_id)

    def _heartbeat(self, hb: Heartbeat, user_id: str | None) -> None:
        if user_id is not None and hb.device_id != user_id:
            log.warning("heartbeat for %s on %s's connection dropped", hb.device_id, user_id)
            return None
        self.store.record_heartbeat(hb)
        self.stats.heartbeats += 1
        return None

    def _event(self, msg: EventMessage, user_id: str | None) -> list[bytes] | None:
        self.stats.events += 1
        head = msg.header
        try:
            self._check(msg, user_id)
        except Rejected as exc:
            return self._nack(str(exc), head.event_id, head.seq)
        media = {name: bytes(data) for name, data in msg.media.items()}
        try:
            result = self.store.ingest_event(msg.event, media, manifest=bytes(msg.manifest_bytes),
                                             signature=bytes(msg.signature), seq=head.seq)
        except Exception:
            self.stats.store_errors += 1
            log.exception("store failed for %s/%s; not ACKed", head.device_id, head.event_id)
            return None
        self._advance_chain(head.device_id, head.seq, msg)
        self.stats.acked += 1
        self.stats.duplicates += result.duplicate
        return encode_ack(Reply(event_id=head.event_id, seq=head.seq, duplicate=result.duplicate,
                                case_id=result.case_id))

    def _check(self, msg: EventMessage, user_id: str | None) -> None:
        device_id = msg.header.device_id
        if user_id is not None and device_id != user_id:
            raise Rejected(f"device id {device_id!r} in the message is not the authenticated device "
                           f"{user_id!r}")
        device = self.directory.active(device_id)
        if device is None:
            raise Rejected(f"device {device_id!r} is not enrolled or is revoked")
        try:
            check_manifest_matches(msg.manifest, msg.event, msg.metadata, msg.media)
            verify(device.sign_public_key, msg.manifest_bytes, msg.signature)
        except ManifestError as exc:
            raise Rejected(str(exc)) from None
        if self.config.check_jpeg:
            for ref in msg.event.media:
                if ref.content_type == "image/jpeg" and not jpeg_decodes(msg.media[ref.name]):
                    raise Rejected(f"media {ref.name!r}: JPEG does not decode")
        self._check_chain(device_id, msg)

    def _check_chain(self, device_id: str, msg: EventMessage) -> None:
        # Only the direct successor of the last event seen is checkable: gaps (evictions, events
        # still in flight) are normal, and a restart forgets the chain head.
        last = self._chain.get(device_id)
        if last is not None and msg.header.seq == last[0] + 1 \
                and msg.manifest.prev_manifest_sha256 != last[1]:
            raise Rejected(f"hash chain broken: seq {msg.header.seq} does not chain to seq {last[0]}")

    def _advance_chain(self, device_id: str, seq: int, msg: EventMessage) -> None:
        last = self._chain.get(device_id)
        if last is None or seq > last[0]:
            self._chain[device_id] = (seq, sha256_hex(msg.manifest_bytes))

    def _nack(self, reason: str, event_id: str | None, seq: int | None) -> list[bytes]:
        self.stats.nacked += 1
        self.stats.last_nack = reason
        key = reason.split(":")[0][:40]
        self.stats.nack_reasons[key] = self.stats.nack_reasons.get(key, 0) + 1
        log.warning("NACK %s seq %s: %s", event_id, seq, reason)
        return encode_nack(Reply(event_id=event_id, seq=seq, reason=reason[:1000]))


def jpeg_decodes(data: bytes | memoryview) -> bool:
    """True if OpenCV can decode it. 1/8-scale decoding still walks the whole entropy-coded stream
    (so truncation and garbage are caught) at a fraction of the cost of a full decode."""
    arr = np.frombuffer(data, dtype=np.uint8)
    if arr.size < 4 or arr[0] != 0xFF or arr[1] != 0xD8 or b"\xff\xd9" not in bytes(arr[-32:]):
        return False  # no SOI, or truncated (libjpeg pads a truncated scan with grey, no error)
    return cv2.imdecode(arr, cv2.IMREAD_REDUCED_GRAYSCALE_8) is not None


def run_ingest(config: IngestConfig, store: IngestStore, stop_event: threading.Event) -> IngestLoop:
    """Start ingest in a daemon thread and wait until it is bound (raises if binding failed)."""
    loop = IngestLoop(config, store, stop_event)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            loop.run()
        except BaseException as exc:
            errors.append(exc)
            loop.ready.set()
            raise

    threading.Thread(target=target, name="ingest", daemon=True).start()
    loop.ready.wait(10)
    if errors:
        raise RuntimeError(f"ingest failed to start on {config.bind}") from errors[0]
    return loop
