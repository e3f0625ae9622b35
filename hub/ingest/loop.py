"""Hub ingest: a CURVE ROUTER that checks, stores and ACKs evidence from edge agents.

Each EVENT goes through cheap checks first (version, framing, sizes, schema), then the manifest
hashes, the device's Ed25519 signature, the JPEGs, the per-device hash chain, and only then the
store. The ACK goes out after the store has committed; a duplicate is re-ACKed; what can never
succeed is NACKed with its reason; a store failure (transient) gets no reply so the agent resends.
No message from one peer can stop the loop: every failure is confined to that message.

Threads: the loop thread owns the socket; it receives a burst, admits it, and runs the checks on a
small pool (hashing, Ed25519, JPEG structure all release the GIL or are short). Events that pass go
to the committer thread, which stores everything waiting as one burst (`Store.ingest_events`: evidence
synced, one transaction) and hands the results back; the loop thread then sends the ACKs. So the next
burst is received and checked while the previous one is being made durable. Heartbeats only update
online state: the loop keeps each device's latest and the committer writes them together about once a
second.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import resource
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import zmq

from hub.devices.hubkeys import HubKeys, HubSigningKey
from hub.devices.registry import DeviceRegistry
from hub.devices.zap import ZAP_DOMAIN, DeviceDirectory, ZapHandler
from hub.evidence.jpeg import jpeg_error
from hub.fleet.link import FleetLink
from hub.ingest.burst import IngestItem, IngestResult
from hub.ingest.config import IngestConfig
from hub.storage.core import StoreError
from protocol.codec import (
    DecodeError,
    EventMessage,
    HeartbeatMessage,
    PushMessage,
    PushResultMessage,
    Reply,
    ReplyMessage,
    SnapshotMessage,
    SnapshotRequestMessage,
    decode,
    encode_ack,
    encode_nack,
)
from protocol.manifest import ManifestError, check_manifest_matches, verify
from protocol.messages import Heartbeat

log = logging.getLogger(__name__)


class IngestStore(DeviceRegistry, Protocol):
    """The part of hub.storage.store.Store that ingest uses."""

    def ingest_events(self, items: Sequence[IngestItem]) -> list[IngestResult | Exception]: ...
    def stage_media(self, item: IngestItem) -> list[Any]: ...
    def record_heartbeats(self, heartbeats: Sequence[Heartbeat]) -> Any: ...


@dataclass(frozen=True)
class _Pending:
    """An event admitted (framing, schema, device) and waiting for the batch checks and the store."""

    routing_id: bytes
    msg: EventMessage
    sign_public_key: str
    size: int  # bytes of all its frames
    staged: list[Any] = field(default_factory=list)  # its media files, written once the checks passed


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
    stage_s: dict[str, float] = field(default_factory=dict)  # wall time per batch stage (bench)
    nack_reasons: dict[str, int] = field(default_factory=dict)


class IngestLoop:
    """The ingest loop; `run()` blocks until `stop_event` is set (checked every poll_ms)."""

    def __init__(self, config: IngestConfig, store: IngestStore, stop_event: threading.Event, *,
                 link: WorkerLink | None = None) -> None:
        self.config = config
        self.link = link  # a worker process of hub.ingest.processes: its port and its reports
        self.store = store
        self.stop_event = stop_event
        self.directory = DeviceDirectory(store, config.device_refresh_s)
        self._limits = config.limits  # built once: a property that makes a model per message shows in profiles
        self.stats = IngestStats()
        self._chain: dict[str, tuple[int, str]] = {}  # device -> (last seq, its manifest hash)
        self._pool: ThreadPoolExecutor | None = None
        self._checks: queue.SimpleQueue[list[_Pending] | None] = queue.SimpleQueue()  # to the checker
        self._rejected: queue.SimpleQueue[tuple[list[tuple[_Pending, str]], float]] = queue.SimpleQueue()
        self._work: queue.SimpleQueue[list[_Pending] | None] = queue.SimpleQueue()  # to the committer
        self._done: queue.SimpleQueue[tuple[list[_Pending], list[Any], float]] = queue.SimpleQueue()
        self._in_flight = 0  # events handed to the checker and not yet answered
        self._in_flight_bytes = 0  # and their size
        self._inline_checks = False  # this thread checks each burst itself (_loop decides)
        self._heartbeats: dict[str, Heartbeat] = {}  # latest per device, not yet handed to the committer
        self._unknown_logged: dict[str, list[str]] = {}  # device -> the unknown health fields last logged
        self._beats: queue.SimpleQueue[list[Heartbeat]] = queue.SimpleQueue()  # to the committer
        self._beats_due = 0.0
        self.ready = threading.Event()  # set once bound: tests and `hub serve` wait on it
        # config pushes and snapshots to the agents connected here (a store with tables: not the bench's fakes)
        self.fleet: FleetLink | None = None

    def run(self) -> None:
        raise_open_file_limit()
        # What exists now (modules, config, the device directory) lives as long as the process: keep
        # it out of the collector's full passes, which otherwise walk it again and again under load.
        gc.freeze()
        with zmq.Context() as ctx:
            zap_thread = None
            if not self.config.insecure:
                zap = ZapHandler(ctx, self.directory)
                zap_thread = threading.Thread(target=zap.serve, args=(self.stop_event,), name="zap",
                                              daemon=True)
                zap_thread.start()
            sock = bind_agents(ctx, self.config, listen_fd=self.link.listen() if self.link else None)
            if hasattr(self.store, "engine"):
                self.fleet = FleetLink(self.store, HubSigningKey.load_or_create(self.config.data_dir))
            self.ready.set()
            if self.link is not None:
                self.link.ready()
            try:
                self._loop(sock)
            finally:
                sock.close(linger=0)
                if zap_thread is not None:
                    zap_thread.join(2.0)

    def _loop(self, sock: zmq.Socket) -> None:
        """A pipeline of three threads: this one receives, decodes and replies (it owns the socket and
        the stats); the checker verifies and writes the files (on a pool); the committer syncs and
        commits. Each burst moves on as soon as its stage is done, so the next is received meanwhile.
        With one check thread (several processes on few cores) this thread checks each burst itself:
        libzmq keeps receiving meanwhile, and a hand-over per burst costs more than it overlaps."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        self._inline_checks = self.config.check_threads == 1
        threads = [threading.Thread(target=self._commit_loop, args=(wake_w,), name="ingest-commit", daemon=True)]
        if not self._inline_checks:
            threads.append(threading.Thread(target=self._check_loop, args=(wake_w,), name="ingest-check",
                                            daemon=True))
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(wake_r, zmq.POLLIN)
        try:
            with ThreadPoolExecutor(self.config.check_threads, thread_name_prefix="ingest-verify") as pool:
                self._pool = pool
                for thread in threads:
                    thread.start()
                try:
                    while not self.stop_event.is_set():
                        full = self._full()
                        poller.modify(sock, 0 if full else zmq.POLLIN)
                        ready = dict(poller.poll(self.config.poll_ms))
                        if wake_r in ready:
                            _drain(wake_r)
                            self._deliver(sock)
                        if ready.get(sock) and not full:
                            self._serve_burst(sock)
                        self._send_to_agents(sock)
                        self._hand_over_heartbeats()
                        if self.link is not None:
                            self.link.report(self.stats)
                finally:
                    self._hand_over_heartbeats(force=True)
                    # The checker passes the end on to the committer once its last burst is through.
                    (self._work if self._inline_checks else self._checks).put(None)
                    for thread in threads:
                        thread.join()
        finally:
            self._deliver(sock)  # answer what is decided before the socket closes; the rest is resent
            os.close(wake_r)
            os.close(wake_w)

    def _serve_burst(self, sock: zmq.Socket) -> None:
        """Take what is queued (up to `batch`, and no further than the in-store limits), answer what is
        answerable at once, and hand the events to the checker."""
        batch: list[_Pending] = []
        room = self.config.max_in_store - self._in_flight
        room_bytes = self.config.max_in_store_bytes - self._in_flight_bytes
        for _ in range(self.config.batch):
            if len(batch) >= room or room_bytes <= 0:
                break
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            try:
                outcome = self.admit(frames)
            except Exception:  # one bad message must not stop ingest for everyone
                self.stats.store_errors += 1
                log.exception("unexpected error admitting a message; no reply, the agent will resend")
                continue
            if isinstance(outcome, _Pending):
                batch.append(outcome)
                room_bytes -= outcome.size
            elif outcome is not None:
                self._send(sock, frames[0].bytes, outcome)
        if not batch:
            return
        self._account(batch, +1)
        if not self._inline_checks:
            self._checks.put(batch)
            return
        t0 = time.perf_counter()
        try:
            rejected, survivors = self.check(batch)
        except Exception:  # a bug in a check must not stop ingest: no replies, the agents resend
            self._account(batch, -1)
            self.stats.store_errors += 1
            log.exception("unexpected error checking a burst of %d; no replies, the agents will resend", len(batch))
            return
        self._rejected.put((rejected, time.perf_counter() - t0))
        if survivors:
            self._work.put(survivors)
        self._deliver(sock)

    def _check_loop(self, wake_w: int) -> None:
        """The checker thread: verify what waits, post the rejected, pass the rest to the committer."""
        while True:
            batch = _take_all(self._checks, self.config.max_in_store)
            if batch is None:
                self._work.put(None)
                return
            t0 = time.perf_counter()
            rejected, survivors = self.check(batch)
            # Posted even when empty: the socket thread also keeps the time the checks took.
            self._rejected.put((rejected, time.perf_counter() - t0))
            os.write(wake_w, b"\0")
            if survivors:
                self._work.put(survivors)

    def _commit_loop(self, wake_w: int) -> None:
        """The committer thread: store everything that waits as one burst, post the results."""
        while True:
            burst = _take_all(self._work, self.config.max_in_store)
            self._write_heartbeats()
            if burst is None:
                return
            if not burst:  # woken for heartbeats only
                continue
            t0 = time.perf_counter()
            items = [_item(p.msg, p.staged or None) for p in burst]
            try:
                results: list[IngestResult | Exception] = self.store.ingest_events(items)
            except Exception as exc:  # the store is down or broken: no replies, the agents resend
                results = [exc] * len(items)
            self._done.put((burst, results, time.perf_counter() - t0))
            os.write(wake_w, b"\0")

    def _hand_over_heartbeats(self, *, force: bool = False) -> None:
        """Pass the devices' latest heartbeats to the committer, at most every heartbeat_flush_s: one
        transaction for all instead of one per heartbeat (each costs about as much as an event)."""
        if self._heartbeats and (force or time.monotonic() >= self._beats_due):
            self._beats.put(list(self._heartbeats.values()))
            self._heartbeats.clear()
            self._beats_due = time.monotonic() + self.config.heartbeat_flush_s
            self._work.put([])  # wakes the committer

    def _write_heartbeats(self) -> None:
        beats: list[Heartbeat] = []
        while True:
            try:
                beats += self._beats.get_nowait()
            except queue.Empty:
                break
        if beats:
            try:
                self.store.record_heartbeats(beats)
            except Exception:  # online state only: the devices report again within seconds
                log.exception("heartbeats of %d device(s) not recorded", len({b.device_id for b in beats}))

    def _deliver(self, sock: zmq.Socket) -> None:
        """Reply to what the checker refused and the committer finished (on this thread: it owns the
        socket and the stats)."""
        while True:
            try:
                rejected, seconds = self._rejected.get_nowait()
            except queue.Empty:
                break
            self._time("verify", seconds)
            self._account([item for item, _ in rejected], -1)
            for item, reason in rejected:
                self._send(sock, item.routing_id, self._nack(reason, item.msg.header.event_id, item.msg.header.seq))
        while True:
            try:
                burst, results, seconds = self._done.get_nowait()
            except queue.Empty:
                return
            self._time("store", seconds)
            self._account(burst, -1)
            for item, result in zip(burst, results, strict=True):
                reply = self._reply(item.msg, result)
                if reply is not None:
                    self._send(sock, item.routing_id, reply)

    def _full(self) -> bool:
        """The in-store limits are reached: what is queued stays with libzmq (rcvhwm per peer), then TCP."""
        return self._in_flight >= self.config.max_in_store or self._in_flight_bytes >= self.config.max_in_store_bytes

    def _account(self, items: list[_Pending], sign: int) -> None:
        """Count events in (+1, handed to the checker) or out (-1, answered or given up)."""
        self._in_flight += sign * len(items)
        self._in_flight_bytes += sign * sum(item.size for item in items)

    def _send(self, sock: zmq.Socket, routing_id: bytes, reply: list[bytes]) -> None:
        try:
            sock.send_multipart([routing_id, *reply], zmq.NOBLOCK)
        except (zmq.Again, zmq.ZMQError) as exc:  # peer gone (ROUTER_MANDATORY) or stuck: it resends
            self.stats.unroutable_replies += 1
            log.debug("reply not routable: %s", exc)

    def admit(self, frames: list[zmq.Frame]) -> list[bytes] | _Pending | None:
        """First look at one message ([routing id, *body]): a reply now, an event to check and store,
        or None (dropped, or a heartbeat)."""
        body = frames[1:]
        user_id = None if self.config.insecure or not body else str(body[0].get("User-Id"))  # a str property
        if not body:
            return None
        if user_id is not None and self.directory.active(user_id) is None:
            self.stats.dropped_unauthorised += 1
            log.warning("dropped a message from revoked or unknown device %s", user_id)
            return None
        try:
            msg = decode([f.buffer for f in body], self._limits)
        except DecodeError as exc:
            return self._nack(exc.reason, exc.event_id, exc.seq)
        if isinstance(msg, HeartbeatMessage):
            self._seen(msg.heartbeat.device_id, user_id, frames[0].bytes)
            self._heartbeat(msg.heartbeat, user_id)
            return None
        if isinstance(msg, ReplyMessage):
            return self._nack(f"frame 1: {msg.command} is a hub reply, not accepted from agents", None, None)
        if isinstance(msg, PushMessage | SnapshotRequestMessage):
            return self._nack("frame 1: a hub command, not accepted from agents", None, None)
        if isinstance(msg, PushResultMessage):
            if self._seen(msg.result.device_id, user_id, frames[0].bytes) and self.fleet is not None:
                self.fleet.on_result(msg.result)
            return None
        if isinstance(msg, SnapshotMessage):
            if self._seen(msg.snapshot.device_id, user_id, frames[0].bytes) and self.fleet is not None:
                self.fleet.on_snapshot(msg.snapshot, bytes(msg.jpeg))
            return None
        self.stats.events += 1
        head = msg.header
        if user_id is not None and head.device_id != user_id:
            return self._nack(f"device id {head.device_id!r} in the message is not the authenticated "
                              f"device {user_id!r}", head.event_id, head.seq)
        device = self.directory.active(head.device_id)
        if device is None:
            return self._nack(f"device {head.device_id!r} is not enrolled or is revoked", head.event_id,
                              head.seq)
        return _Pending(frames[0].bytes, msg, device.sign_public_key, sum(len(f) for f in body))

    def _seen(self, device_id: str, user_id: str | None, routing_id: bytes) -> bool:
        """Whether a device's message came on its own connection; if so, pushes for it go there."""
        if user_id is not None and device_id != user_id:
            log.warning("message for %s on %s's connection dropped", device_id, user_id)
            return False
        if self.fleet is not None:
            self.fleet.seen(device_id, routing_id)
        return True

    def _send_to_agents(self, sock: zmq.Socket) -> None:
        """Config pushes and snapshot requests due for the agents connected to this process."""
        if self.fleet is None:
            return
        for frames in self.fleet.outgoing():
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
            except (zmq.Again, zmq.ZMQError) as exc:  # gone or stuck: sent again when it reports back
                log.debug("push not routable: %s", exc)

    def _heartbeat(self, hb: Heartbeat, user_id: str | None) -> None:
        if user_id is not None and hb.device_id != user_id:
            log.warning("heartbeat for %s on %s's connection dropped", hb.device_id, user_id)
            return None
        self._note_unknown_fields(hb)
        self._heartbeats[hb.device_id] = hb  # written by the committer (_hand_over_heartbeats)
        self.stats.heartbeats += 1
        return None

    def _note_unknown_fields(self, hb: Heartbeat) -> None:
        """A newer agent's health fields this hub does not know: said once per device and field set."""
        unknown = sorted({*hb.unknown_fields, *(f for cam in hb.cameras for f in cam.unknown_fields)})
        if unknown and self._unknown_logged.get(hb.device_id) != unknown:
            self._unknown_logged[hb.device_id] = unknown
            log.info("device %s (agent %s) sends health fields this hub does not know, set aside: %s; "
                     "upgrade the hub to see them", hb.device_id, hb.agent_version or "?", ", ".join(unknown))

    def check(self, batch: list[_Pending]) -> tuple[list[tuple[_Pending, str]], list[_Pending]]:
        """Verify each event and write the files of the good ones (in parallel): the refused with
        their reasons, and the events to store."""
        verdicts = self._map(self._check_one, batch)
        rejected: list[tuple[_Pending, str]] = []
        survivors: list[_Pending] = []
        for item, verdict in zip(batch, verdicts, strict=True):
            if verdict is None:
                survivors.append(item)
            else:
                rejected.append((item, verdict))
        return rejected, survivors

    def _check_one(self, item: _Pending) -> str | None:
        """One event's whole check on one thread, then its files: one hand-off per slice of the burst,
        not one per event and stage (each costs a thread wake-up and a GIL hand-over)."""
        verdict = self._verify(item) or self._chain_verdict(item.msg)
        if verdict is None:
            self._stage(item)
        return verdict

    def _time(self, stage: str, seconds: float) -> None:
        self.stats.stage_s[stage] = self.stats.stage_s.get(stage, 0.0) + seconds

    def _map(self, fn: Any, items: list[_Pending]) -> list[Any]:
        """`fn` over `items` in order, split into one contiguous slice per worker; this thread takes
        the first slice itself."""
        workers = min(self.config.check_threads, len(items))
        if self._pool is None or workers < 2:
            return [fn(i) for i in items]
        size = -(-len(items) // workers)
        slices = [items[k:k + size] for k in range(0, len(items), size)]
        futures = [self._pool.submit(_apply, fn, s) for s in slices[1:]]
        out = _apply(fn, slices[0])
        for f in futures:
            out += f.result()
        return out

    def _verify(self, item: _Pending) -> str | None:
        """The NACK reason, or None: manifest hashes, the device's signature, JPEGs decode."""
        msg = item.msg
        try:
            check_manifest_matches(msg.manifest, msg.event, msg.metadata, msg.media)
            verify(item.sign_public_key, msg.manifest_bytes, msg.signature)
        except ManifestError as exc:
            return str(exc)
        if self.config.check_jpeg:
            for ref in msg.event.media:
                if ref.content_type == "image/jpeg" and (why := jpeg_error(msg.media[ref.name])):
                    return f"media {ref.name!r}: JPEG does not decode: {why}"
        return None

    def _stage(self, item: _Pending) -> None:
        """Write an accepted event's files (on the pool, in parallel); the committer only syncs them."""
        item.staged.extend(self.store.stage_media(_item(item.msg)))

    def _chain_verdict(self, msg: EventMessage) -> str | None:
        # Only the direct successor of the last event stored is checkable: gaps (evictions, events
        # still in flight) are normal, and a restart forgets the chain head.
        last = self._chain.get(msg.header.device_id)
        if last is not None and msg.header.seq == last[0] + 1 \
                and msg.manifest.prev_manifest_sha256 != last[1]:
            return f"hash chain broken: seq {msg.header.seq} does not chain to seq {last[0]}"
        return None

    def _reply(self, msg: EventMessage, result: IngestResult | Exception) -> list[bytes] | None:
        head = msg.header
        if isinstance(result, StoreError):  # the store refuses this event for good
            return self._nack(str(result), head.event_id, head.seq)
        if isinstance(result, Exception):
            self.stats.store_errors += 1
            log.error("store failed for %s/%s; not ACKed: %r", head.device_id, head.event_id, result)
            return None
        last = self._chain.get(head.device_id)
        if last is None or head.seq > last[0]:
            self._chain[head.device_id] = (head.seq, head.manifest_sha256)  # decode checked it
        self.stats.acked += 1
        self.stats.duplicates += result.duplicate
        return encode_ack(Reply(event_id=head.event_id, seq=head.seq, duplicate=result.duplicate,
                                case_id=result.case_id))

    def _nack(self, reason: str, event_id: str | None, seq: int | None) -> list[bytes]:
        self.stats.nacked += 1
        self.stats.last_nack = reason
        key = reason.split(":")[0][:40]
        self.stats.nack_reasons[key] = self.stats.nack_reasons.get(key, 0) + 1
        log.warning("NACK %s seq %s: %s", event_id, seq, reason)
        return encode_nack(Reply(event_id=event_id, seq=seq, reason=reason[:1000]))


def raise_open_file_limit(want: int = 1 << 16) -> int:
    """Lift this process's open-file limit towards `want` (at most the hard limit); the limit it ends with.

    Every connected agent holds a TCP connection, a file descriptor, and libzmq adds its own per socket:
    a district's 1,800 cameras do not fit the common default soft limit of 1,024, and past it the hub
    cannot even open an evidence file or its database."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            log.info("open-file limit raised from %d to %d (one per connected agent)", soft, target)
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        log.warning("only %d open files allowed (hard limit %s): about that many agents at most can connect; "
                    "raise it (systemd LimitNOFILE=, ulimit -n)", soft, hard)
    return soft


def bind_agents(ctx: zmq.Context, cfg: IngestConfig, *, listen_fd: int | None = None) -> zmq.Socket:
    """The ROUTER the agents connect to: CURVE server with ZAP enforced (unless insecure), limits, heartbeats.
    `listen_fd`: a listening TCP socket to accept on instead of binding `cfg.bind` (libzmq takes it over)."""
    sock = ctx.socket(zmq.ROUTER)
    if listen_fd is not None:
        sock.setsockopt(zmq.USE_FD, listen_fd)
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


def _item(msg: EventMessage, staged: list[Any] | None = None) -> IngestItem:
    # The media hashes are the signed manifest's: `_verify` checked the bytes against them.
    return IngestItem(msg.event, msg.media, bytes(msg.manifest_bytes), bytes(msg.signature), msg.header.seq,
                      {m.name: m.sha256 for m in msg.manifest.media}, staged, bytes(msg.metadata))


def _apply(fn: Any, items: list[Any]) -> list[Any]:
    return [fn(i) for i in items]


def _take_all(q: queue.SimpleQueue[list[_Pending] | None], limit: int) -> list[_Pending] | None:
    """The next batch and whatever else waits (up to about `limit`); None once the queue is closed
    (the None is put back for a later call)."""
    batch = q.get()
    if batch is None:
        return None
    while len(batch) < limit:
        try:
            more = q.get_nowait()
        except queue.Empty:
            break
        if more is None:
            q.put(None)
            break
        batch += more
    return batch


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


class WorkerLink(Protocol):
    """What a worker process of hub.ingest.processes gets from its parent."""

    def listen(self) -> int: ...  # a listening socket (fd) on the shared port
    def ready(self) -> None: ...  # bound: tell the parent
    def report(self, stats: IngestStats) -> None: ...  # the counters, now and then


def start_in_thread(runner: Any, name: str) -> list[BaseException]:
    """`runner.run()` in a daemon thread; waits up to 10 s for `runner.ready` (set once bound, or on
    failure). The list receives the exception that ended `run`, if any."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            runner.run()
        except BaseException as exc:
            errors.append(exc)
            runner.ready.set()
            raise

    threading.Thread(target=target, name=name, daemon=True).start()
    runner.ready.wait(10)
    return errors


def run_ingest(config: IngestConfig, store: IngestStore, stop_event: threading.Event) -> IngestLoop:
    """Start ingest in a daemon thread and wait until it is bound (raises if binding failed)."""
    loop = IngestLoop(config, store, stop_event)
    errors = start_in_thread(loop, "ingest")
    if errors:
        raise RuntimeError(f"ingest failed to start on {config.bind}") from errors[0]
    return loop
