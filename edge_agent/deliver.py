"""Delivery of spooled evidence to the hub: at-least-once over a CURVE-authenticated DEALER socket.

`Outbox` is the pipeline's EventSink: `submit` spools (durable on return) and never touches the
network. A sender thread moves spooled events to the hub with a credit window of a few events in
flight, resends on timeout with exponential backoff (and at once after a reconnect, since ZeroMQ
drops what was queued on a dead connection), deletes an event only when the hub ACKs it (after its
commit) and dead-letters it when the hub NACKs it (permanently refused, with a reason). The hub
dedups on (device id, event id), so a resend of something already stored is only re-ACKed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import zmq
from pydantic import BaseModel, ConfigDict, Field
from zmq.utils.monitor import recv_monitor_message

from edge_agent.spool import Spool, SpoolCorrupt, SpoolEntry, SpoolStats
from protocol.bundle import DeviceBundle
from protocol.codec import (
    Command,
    DecodeError,
    PushMessage,
    ReplyMessage,
    SnapshotRequestMessage,
    decode,
    encode_heartbeat,
    encode_push_result,
    encode_snapshot,
)
from protocol.manifest import Signer
from protocol.messages import CameraHealth, Heartbeat, ModelInfo, ProblemEvent
from protocol.push import PushResult, Snapshot

log = logging.getLogger(__name__)

ZERO_COPY_MIN = 64 * 1024  # below this, copying is cheaper than pinning the buffer
MAX_LATENCY_WATCH = 10_000  # events whose ACK latency is awaited
HEALTH_CHECK_S = 1.0  # how often the sender looks for a camera going online, offline or stalled


class OutboxConfig(BaseModel):
    """Delivery knobs. Times in seconds unless the name says ms (then they go straight to libzmq)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spool_dir: Path = Field(description="where evidence waits for its ACK; survives restarts")
    quota_bytes: int = Field(default=2 * 1024**3, gt=0, description="disk quota of the spool")
    window: int = Field(default=8, ge=1, le=256, description="events in flight without an ACK")
    ack_timeout_s: float = Field(default=10.0, gt=0, description="first resend after this long")
    max_backoff_s: float = Field(default=60.0, gt=0, description="resend interval grows up to this")
    heartbeat_s: float = Field(default=10.0, gt=0, description="health report to the hub every N s")
    max_event_bytes: int = Field(default=48 * 1024**2, gt=0,
                                 description="larger events are dead-lettered here, the hub would refuse")
    reconnect_ivl_ms: int = Field(default=250, gt=0)
    reconnect_ivl_max_ms: int = Field(
        default=2_000, ge=0, description="reconnect backoff ceiling: the link is back within this long of the hub "
        "listening again (a refused TCP connect costs the hub nothing)")
    # A 10 MB clip on a 1 Mbit/s uplink takes ~80 s; ZMTP pings queue behind it, so the timeout
    # must be longer than that or a healthy slow link gets torn down mid-message forever.
    zmq_heartbeat_ivl_ms: int = Field(default=15_000, gt=0)
    zmq_heartbeat_timeout_ms: int = Field(default=180_000, gt=0)
    poll_ms: int = Field(default=100, gt=0, le=1000, description="loop tick: bounds shutdown latency")
    insecure: bool = Field(default=False, description="no CURVE: plain TCP, for a lab only")


@dataclass
class Flight:
    seq: int
    event_id: str
    attempts: int
    deadline: float


@dataclass
class DeliveryStats:
    sent: int = 0
    resent: int = 0
    acked: int = 0
    duplicates: int = 0  # ACKs saying the hub already had it
    nacked: int = 0
    heartbeats: int = 0
    reconnects: int = 0
    unmatched_replies: int = 0
    last_ack_at: float | None = None
    link_up: bool = False
    ack_latency_s: float | None = None  # the last ACKed event: its frame time -> the hub's ACK
    ack_latency_avg_s: float | None = None  # moving average of the same

    def record_latency(self, seconds: float) -> None:
        self.ack_latency_s = seconds
        avg = self.ack_latency_avg_s
        self.ack_latency_avg_s = seconds if avg is None else 0.9 * avg + 0.1 * seconds


HealthSource = Callable[[], Sequence[CameraHealth]]
SnapshotSource = Callable[[str], tuple[bytes, float]]  # camera id -> (JPEG, frame time); LookupError: none


class PushHandler(Protocol):
    """What the outbox needs from edge_agent.managed_config.ManagedConfigs (hub -> agent pushes)."""

    def handle(self, msg: PushMessage) -> PushResult | None: ...  # None: answered later (late_results)
    def reports(self) -> list[PushResult]: ...


class Outbox:
    """EventSink for production: spools every event, a sender thread delivers them."""

    def __init__(self, bundle: DeviceBundle, config: OutboxConfig, *, health: HealthSource | None = None,
                 agent_version: str = "", pushes: PushHandler | None = None, model: ModelInfo | None = None,
                 snapshots: SnapshotSource | None = None) -> None:
        """`pushes` answers the hub's pushes (configs) and says what the box runs when the link comes up;
        `snapshots` gives the hub a camera's newest frame when it asks (Pipeline.snapshot)."""
        self.bundle = bundle
        self.config = config
        self.spool = Spool(config.spool_dir, bundle.device_id, Signer(bundle.sign_secret),
                           quota_bytes=config.quota_bytes)
        self.stats = DeliveryStats()
        self._health = health or (lambda: [])
        self._agent_version = agent_version
        self._started = time.monotonic()
        self._observed: dict[str, float] = {}  # event id -> its frame time (epoch), for the ACK latency
        self._link_changed = time.monotonic()
        self._health_sent: tuple[tuple[str, bool, bool], ...] = ()  # cameras' states in the last heartbeat
        self._next_health_check = 0.0
        self.pushes = pushes
        self.snapshots = snapshots
        self.model = model  # reported in heartbeats; a model push replaces it
        self._cpu_mark = (time.monotonic(), time.process_time())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, event: ProblemEvent, media: Mapping[str, bytes]) -> None:
        """Durable on return (or SpoolFull: the quota policy refused it, nothing was stored)."""
        self.spool.put(event, dict(media))
        self._observed[event.event_id] = event.observed_at.timestamp()
        if len(self._observed) > MAX_LATENCY_WATCH:  # evicted or dead-lettered events never ACK
            self._observed.pop(next(iter(self._observed)))

    def settled(self, event_id: str, acked: bool) -> None:
        """The hub ACKed (or refused) an event: record its end-to-end latency, frame time to ACK."""
        observed = self._observed.pop(event_id, None)
        if observed is not None and acked:
            self.stats.record_latency(max(0.0, time.time() - observed))

    def link_changed(self, up: bool, in_flight: int = 0) -> None:
        """Logs each change of the hub link once (libzmq reconnects by itself, silently)."""
        if up == self.stats.link_up:
            return
        now = time.monotonic()
        since, self._link_changed = now - self._link_changed, now
        self.stats.link_up = up
        endpoint = self.bundle.endpoint
        if up:
            self.stats.reconnects += 1
            log.info("hub link up: %s (after %.1f s down); %d events in flight resent, %d waiting in the spool",
                     endpoint, since, in_flight, self.spool.stats().events)
        else:
            log.warning("hub link down: %s (was up %.1f s); events wait in the spool (%d now)", endpoint, since,
                        self.spool.stats().events)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("outbox sender already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="outbox-sender", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Outbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_drained(self, timeout: float) -> bool:
        """True once every spooled event is ACKed or dead-lettered (tests, shutdown)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.spool.stats().events == 0:
                return True
            time.sleep(0.05)
        return self.spool.stats().events == 0

    def run(self, stop_event: threading.Event) -> None:
        """The sender loop; returns promptly (within poll_ms) once `stop_event` is set."""
        refusals = 0
        with zmq.Context() as ctx:
            while not stop_event.is_set():
                sock = self._socket(ctx)
                # the monitor before the connect: a refusal that came first would be missed, and libzmq never
                # retries after one, so the link would stay down for good (seen on a loaded box)
                monitor = sock.get_monitor_socket(_MONITORED)
                sock.connect(self.bundle.endpoint)
                try:
                    refused = _SenderLoop(self, sock, monitor).loop(stop_event)
                except Exception:  # a sender that dies silently loses no data but delivers nothing
                    log.exception("outbox sender failed; restarting it in 1 s")
                    refused = False
                    stop_event.wait(1.0)
                finally:
                    if stop_event.is_set():
                        self.stats.link_up = False  # a clean stop is no outage to report
                    self.link_changed(False)
                    sock.disable_monitor()
                    monitor.close(linger=0)
                    sock.close(linger=0)
                if refused:
                    # libzmq never reconnects after the hub's ZAP said no (not enrolled yet, revoked,
                    # a hub key mismatch): retry with a fresh socket, slowly.
                    refusals += 1
                    wait = min(self.config.reconnect_ivl_max_ms / 1000, 2.0 ** refusals)
                    log.error("hub %s refused this device's keys (revoked or not enrolled?); retrying in "
                              "%.0f s", self.bundle.endpoint, wait)
                    stop_event.wait(wait)

    def _socket(self, ctx: zmq.Context) -> zmq.Socket:
        """The DEALER to the hub, set up but not connected yet."""
        cfg = self.config
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing on a connection that isn't up
        sock.setsockopt(zmq.LINGER, 0)  # the spool, not libzmq, holds what is unsent
        sock.setsockopt(zmq.RECONNECT_IVL, cfg.reconnect_ivl_ms)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, cfg.reconnect_ivl_max_ms)
        sock.setsockopt(zmq.HEARTBEAT_IVL, cfg.zmq_heartbeat_ivl_ms)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, cfg.zmq_heartbeat_timeout_ms)
        sock.setsockopt(zmq.HEARTBEAT_TTL, cfg.zmq_heartbeat_timeout_ms)
        sock.setsockopt(zmq.SNDHWM, max(16, cfg.window * 2))
        if cfg.insecure:
            log.warning("INSECURE delivery: no CURVE encryption or authentication to %s", self.bundle.endpoint)
        else:
            sock.curve_secretkey = self.bundle.curve_secret.encode()
            sock.curve_publickey = self.bundle.curve_public.encode()
            sock.curve_serverkey = self.bundle.hub_curve_public.encode()
        return sock

    def metrics(self) -> dict[str, float]:
        """Flat figures for the edge metrics exporter (names without prefix; counters end in _total)."""
        spool, d = self.spool.stats(), self.stats
        return {"spool_events": spool.events, "spool_bytes": spool.bytes, "dead_letters": spool.dead_letters,
                "evicted_total": spool.evicted, "refused_total": spool.refused, "sent_total": d.sent,
                "resent_total": d.resent, "acked_total": d.acked, "duplicate_acks_total": d.duplicates,
                "nacked_total": d.nacked, "reconnects_total": d.reconnects, "link_up": 1.0 if d.link_up else 0.0,
                "ack_latency_s": -1.0 if d.ack_latency_s is None else d.ack_latency_s,
                "ack_latency_avg_s": -1.0 if d.ack_latency_avg_s is None else d.ack_latency_avg_s,
                "last_ack_age_s": time.time() - d.last_ack_at if d.last_ack_at else -1.0,
                "oldest_unsent_age_s": time.time() - oldest.timestamp() if (oldest := self.oldest_unsent_at())
                else -1.0}

    def heartbeat(self) -> Heartbeat:
        spool: SpoolStats = self.spool.stats()
        cameras = list(self._health())
        self._health_sent = _camera_states(cameras)
        return Heartbeat(device_id=self.bundle.device_id, sent_at=datetime.now(UTC),
                         agent_version=self._agent_version, uptime_s=time.monotonic() - self._started,
                         spool_events=spool.events, spool_bytes=spool.bytes, dead_letters=spool.dead_letters,
                         cameras=cameras, oldest_unsent_at=self.oldest_unsent_at(),
                         cpu_percent=self._cpu_percent(), model=self.model)

    def oldest_unsent_at(self) -> datetime | None:
        """When the oldest event still waiting for its ACK was spooled."""
        for entry in self.spool.pending(limit=1):
            try:
                return datetime.fromtimestamp(entry.path.stat().st_mtime, UTC)
            except FileNotFoundError:  # ACKed meanwhile
                return None
        return None

    def _cpu_percent(self) -> float:
        """This process's CPU (all threads) since the previous call, in % of one core."""
        wall, cpu = time.monotonic(), time.process_time()
        last_wall, last_cpu = self._cpu_mark
        self._cpu_mark = (wall, cpu)
        return round(max(0.0, cpu - last_cpu) / (wall - last_wall) * 100, 1) if wall > last_wall else 0.0

    def health_changed(self, now: float) -> bool:
        """Whether a camera went online, offline or stalled since the last heartbeat (looked at once a
        second): the hub hears such news at once, not a heartbeat interval later."""
        if now < self._next_health_check:
            return False
        self._next_health_check = now + HEALTH_CHECK_S
        return _camera_states(list(self._health())) != self._health_sent


def _camera_states(cameras: Sequence[CameraHealth]) -> tuple[tuple[str, bool, bool], ...]:
    return tuple((c.camera_id, c.online, c.stalled) for c in cameras)


_MONITORED = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
              | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_DISCONNECTED)


class _SenderLoop:
    """One socket's worth of state; lives and dies in the sender thread."""

    def __init__(self, outbox: Outbox, sock: zmq.Socket, monitor: zmq.Socket) -> None:
        self.outbox, self.sock, self.monitor = outbox, sock, monitor
        self.cfg = outbox.config
        self.spool = outbox.spool
        self.stats = outbox.stats
        self.in_flight: dict[int, Flight] = {}
        self.next_heartbeat = 0.0
        self.refused = False
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLIN)
        self.poller.register(monitor, zmq.POLLIN)

    def loop(self, stop_event: threading.Event) -> bool:
        """Run until stopped (False) or until the hub refused our keys (True: rebuild the socket)."""
        self.refused = False
        while not stop_event.is_set() and not self.refused:
            now = time.monotonic()
            self._resend_expired(now)
            self._fill_window(now)
            if now >= self.next_heartbeat or self.outbox.health_changed(now):
                self._send_heartbeat(now)
            events = dict(self.poller.poll(self.cfg.poll_ms))
            if self.monitor in events:
                self._on_monitor()
            if self.sock in events:
                self._drain_replies()
            self._send_late()
        return self.refused

    def _send_late(self) -> None:
        """Answers to pushes finished off this thread (edge_agent.model_push downloads detectors)."""
        late = getattr(self.outbox.pushes, "late_results", None)
        for result in late() if late is not None else ():
            self._answer(result)

    def _backoff(self, attempts: int) -> float:
        return min(self.cfg.ack_timeout_s * 2 ** max(0, attempts - 1), self.cfg.max_backoff_s)

    def _send(self, entry: SpoolEntry) -> bool:
        if entry.size > self.cfg.max_event_bytes:
            self.spool.dead_letter(entry.seq, f"event is {entry.size} bytes, over max_event_bytes "
                                   f"{self.cfg.max_event_bytes}")
            return True
        try:
            frames = self.spool.read_frames(entry)
        except FileNotFoundError:  # evicted or acked meanwhile
            self.in_flight.pop(entry.seq, None)
            return True
        except SpoolCorrupt as exc:  # disk damage, not a crash (writes are atomic): keep it aside
            self.in_flight.pop(entry.seq, None)
            self.spool.dead_letter(entry.seq, f"spool file unreadable on this device: {exc}")
            return True
        try:
            send_frames(self.sock, frames, zmq.NOBLOCK)
        except zmq.Again:
            return False  # no connection (IMMEDIATE) or HWM: try again next tick
        return True

    def _fill_window(self, now: float) -> None:
        room = self.cfg.window - len(self.in_flight)
        if room <= 0:
            return
        for entry in self.spool.pending(limit=room, exclude=set(self.in_flight)):
            if not self._send(entry):
                return
            if self.spool.get(entry.seq) is not None:
                self.in_flight[entry.seq] = Flight(entry.seq, entry.event_id, 1, now + self._backoff(1))
                self.stats.sent += 1

    def _resend_expired(self, now: float) -> None:
        for flight in sorted(self.in_flight.values(), key=lambda f: f.seq):
            if flight.deadline > now:
                continue
            entry = self.spool.get(flight.seq)
            if entry is None:
                del self.in_flight[flight.seq]
                continue
            if not self._send(entry):
                return
            flight.attempts += 1
            flight.deadline = now + self._backoff(flight.attempts)
            self.stats.resent += 1
            log.debug("resent seq %d (attempt %d)", flight.seq, flight.attempts)

    def _send_heartbeat(self, now: float) -> None:
        self.next_heartbeat = now + self.cfg.heartbeat_s
        try:
            send_frames(self.sock, encode_heartbeat(self.outbox.heartbeat()), zmq.NOBLOCK)
            self.stats.heartbeats += 1
        except zmq.Again:
            pass  # not connected; health is only worth sending fresh

    def _on_monitor(self) -> None:
        while self.monitor.poll(0):
            msg = recv_monitor_message(self.monitor)
            if msg["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                # Whatever was in flight died with the old connection: resend it now, not at timeout.
                for flight in self.in_flight.values():
                    flight.deadline = 0.0
                self.next_heartbeat = 0.0
                self._send_reports()
                self.outbox.link_changed(True, len(self.in_flight))
            elif msg["event"] == zmq.EVENT_DISCONNECTED:
                self.outbox.link_changed(False)
            elif msg["event"] in (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
                self.refused = True

    def _drain_replies(self) -> None:
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = decode(frames)
            except DecodeError as exc:
                log.error("unreadable reply from hub: %s", exc.reason)
                continue
            if isinstance(msg, ReplyMessage):
                self._on_reply(msg)
            elif isinstance(msg, PushMessage) and self.outbox.pushes is not None:
                answer = self.outbox.pushes.handle(msg)
                if answer is not None:
                    self._answer(answer)
            elif isinstance(msg, SnapshotRequestMessage):
                self._send_snapshot(msg.request.camera_id)

    def _send_snapshot(self, camera_id: str) -> None:
        snap = Snapshot(device_id=self.outbox.bundle.device_id, camera_id=camera_id)
        jpeg = b""
        try:
            if self.outbox.snapshots is None:
                raise LookupError("this agent takes no snapshots")
            jpeg, ts = self.outbox.snapshots(camera_id)
            snap = snap.model_copy(update={"taken_at": datetime.fromtimestamp(ts, UTC)})
        except LookupError as exc:
            snap = snap.model_copy(update={"error": str(exc)[:500]})
        try:
            send_frames(self.sock, encode_snapshot(snap, jpeg), zmq.NOBLOCK)
        except zmq.Again:
            log.warning("could not send the snapshot of %s: hub link down", camera_id)

    def _send_reports(self) -> None:
        """Tell the hub what runs here, so it pushes what this box missed while away."""
        if self.outbox.pushes is not None:
            for result in self.outbox.pushes.reports():
                self._answer(result)

    def _answer(self, result: PushResult) -> None:
        try:
            send_frames(self.sock, encode_push_result(result), zmq.NOBLOCK)
        except zmq.Again:  # the link went down: the report on the next connect says it again
            log.warning("could not answer push %s %s v%d: hub link down", result.kind.value, result.target,
                        result.version)

    def _on_reply(self, msg: ReplyMessage) -> None:
        reply = msg.reply
        entry = self.spool.get(reply.seq) if reply.seq is not None else None
        if reply.seq is not None:
            self.in_flight.pop(reply.seq, None)
        if entry is None or entry.event_id != reply.event_id:
            if msg.command is Command.NACK and reply.seq is None:
                log.error("hub refused a message it could not attribute: %s", reply.reason)
            self.stats.unmatched_replies += 1
            return
        if msg.command is Command.ACK:
            self.spool.ack(entry.seq)
            self.outbox.settled(entry.event_id, acked=True)
            self.stats.acked += 1
            self.stats.duplicates += reply.duplicate
            self.stats.last_ack_at = time.time()
        else:
            self.outbox.settled(entry.event_id, acked=False)
            self.spool.dead_letter(entry.seq, reply.reason or "refused by hub without a reason")
            self.stats.nacked += 1


def send_frames(sock: zmq.Socket, frames: Sequence[bytes], flags: int = 0) -> None:
    """Send a multipart message, zero-copy for big frames. Once the first part is accepted libzmq
    accepts the rest (multipart atomicity), so an Again can only come from the first."""
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        more = zmq.SNDMORE if i < last else 0
        sock.send(frame, flags | more, copy=len(frame) < ZERO_COPY_MIN)
