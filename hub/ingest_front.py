"""Ingest over several processes: one front owns the agents' socket, worker processes do the work.

One Python process checks and stores at most what one core's worth of GIL allows (decoding, the JPEG
walk and the database are Python). With `IngestConfig.processes` > 1 the hub's process keeps only the
front: the CURVE ROUTER the agents connect to (CURVE decryption runs in libzmq's I/O threads) and the
ZAP handler. The front reads each message's authenticated User-Id, forwards
`[routing id, User-Id, *body]` to a worker over a private ipc socket (a 0700 directory: only the hub's
user can connect) and relays the worker's reply back to the agent. Each worker runs the same
`hub.ingest.IngestLoop` as single-process ingest, on its own store connection, so the checks, the
evidence writes, the commits and the ACK-after-commit rule are exactly those of one process.

A device's messages always go to the same worker while the set of workers is unchanged (hash of the
User-Id, else of the connection), so its events are checked in order and its hash chain is followed
by one worker. Workers announce themselves (READY) and send their counters about once a second
(STATS); the front serves the sum as `stats`. A worker that dies is restarted; what it held unanswered
is resent by the agents (nothing is ACKed before its commit), so nothing is lost or doubled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import zmq

from hub.ingest import IngestConfig, IngestLoop, IngestStats, bind_agents, start_in_thread
from hub.security import ZapHandler
from hub.settings import HubSettings

log = logging.getLogger(__name__)

_CONTROL = b""  # first frame of a worker's control message; an agent routing id is never empty
_READY, _STATS = b"READY", b"STATS"
_RESTART_DELAY_S = 1.0


class _Link:
    """The worker side of the front link (hub.ingest.WorkerLink)."""

    def __init__(self, endpoint: str, index: int, report_every_s: float = 1.0) -> None:
        self.endpoint, self.index, self.every = endpoint, index, report_every_s
        self._next = 0.0

    def connect(self, ctx: zmq.Context) -> zmq.Socket:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, worker_id(self.index))
        sock.connect(self.endpoint)
        sock.send_multipart([_CONTROL, _READY])
        return sock

    def report(self, sock: zmq.Socket, stats: IngestStats) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        with contextlib.suppress(zmq.Again):  # the front is busy: the next report carries the counts
            sock.send_multipart([_CONTROL, _STATS, json.dumps(asdict(stats)).encode()], zmq.NOBLOCK)


def worker_id(index: int) -> bytes:
    return f"w{index}".encode()


class _StopWhenOrphaned:
    """The worker's stop flag: set by the front, or the front's process is gone (no orphans)."""

    def __init__(self, stop: Any) -> None:
        self.stop, self.parent = stop, os.getppid()

    def is_set(self) -> bool:
        return bool(self.stop.is_set()) or os.getppid() != self.parent


def worker_main(settings: HubSettings, config: IngestConfig, index: int, endpoint: str, stop: Any) -> None:
    """Entry point of a worker process: its own store, one IngestLoop behind the front."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s ingest-w{index} %(name)s: %(message)s")
    from hub.main import open_store  # here, not at import: the front's process has its store already

    store = open_store(settings)
    try:
        loop = IngestLoop(config, store, _StopWhenOrphaned(stop), link=_Link(endpoint, index))  # type: ignore[arg-type]
        loop.run()
    finally:
        store.close()


class IngestFront:
    """The agents' socket and the workers: `run()` blocks until `stop_event` is set."""

    def __init__(self, config: IngestConfig, settings: HubSettings, directory_store: Any,
                 stop_event: threading.Event) -> None:
        from hub.security import DeviceDirectory

        self.config, self.settings, self.stop_event = config, settings, stop_event
        self.directory = DeviceDirectory(directory_store, config.device_refresh_s)
        self.ready = threading.Event()
        self._worker_stats: dict[bytes, dict[str, Any]] = {}
        self._front = IngestStats()  # what the front itself counts (unroutable replies, no worker)
        self._procs: dict[int, Any] = {}
        self._restart_at: dict[int, float] = {}
        self._up: list[bytes] = []  # workers that said READY, in index order
        self._held: list[list[Any]] = []  # for a worker whose queue is full; agents are not read meanwhile
        self._mp = mp.get_context("spawn")
        self._mp_stop = self._mp.Event()

    @property
    def stats(self) -> IngestStats:
        """The workers' counters summed, plus the front's own."""
        total = IngestStats(**{f.name: getattr(self._front, f.name) for f in fields(IngestStats)
                               if f.name not in ("stage_s", "nack_reasons")})
        for s in list(self._worker_stats.values()):
            for f in fields(IngestStats):
                value = s.get(f.name)
                if isinstance(value, int) and not isinstance(value, bool):
                    setattr(total, f.name, getattr(total, f.name) + value)
                elif isinstance(value, dict):
                    merged = getattr(total, f.name)
                    for k, v in value.items():
                        merged[k] = merged.get(k, 0) + v
                elif f.name == "last_nack" and value:
                    total.last_nack = value
        return total

    def run(self) -> None:
        private = tempfile.mkdtemp(prefix="cityeye-ingest-")  # 0700: only the hub's user reaches the workers
        endpoint = f"ipc://{Path(private) / 'workers'}"
        try:
            with zmq.Context() as ctx:
                zap_thread = None
                if not self.config.insecure:
                    zap = ZapHandler(ctx, self.directory)
                    zap_thread = threading.Thread(target=zap.serve, args=(self.stop_event,), name="zap", daemon=True)
                    zap_thread.start()
                agents = bind_agents(ctx, self.config)
                workers = self._bind_workers(ctx, endpoint)
                for i in range(self.config.processes):
                    self._start_worker(i, endpoint)
                self.ready.set()
                try:
                    self._loop(agents, workers, endpoint)
                finally:
                    agents.close(linger=0)
                    workers.close(linger=0)
                    self._stop_workers()
                    if zap_thread is not None:
                        zap_thread.join(2.0)
        finally:
            shutil.rmtree(private, ignore_errors=True)

    def _bind_workers(self, ctx: zmq.Context, endpoint: str) -> zmq.Socket:
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted worker takes over its id at once
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(endpoint)
        return sock

    def _start_worker(self, index: int, endpoint: str) -> None:
        proc = self._mp.Process(target=worker_main, name=f"cityeye-ingest-w{index}",
                                args=(self.settings, self.config, index, endpoint, self._mp_stop), daemon=True)
        proc.start()
        self._procs[index] = proc

    def _stop_workers(self) -> None:
        self._mp_stop.set()
        for proc in self._procs.values():
            proc.join(10)
            if proc.is_alive():
                proc.kill()

    def _supervise(self, endpoint: str) -> None:
        """Restart a worker that died (after a short delay, so a crash loop does not spin)."""
        now = time.monotonic()
        for index, proc in list(self._procs.items()):
            if proc.is_alive():
                continue
            due = self._restart_at.setdefault(index, now + _RESTART_DELAY_S)
            if now < due:
                continue
            log.error("ingest worker %d exited (code %s); restarting it", index, proc.exitcode)
            wid = worker_id(index)
            if wid in self._up:
                self._up.remove(wid)
            del self._restart_at[index]
            self._start_worker(index, endpoint)

    def _loop(self, agents: zmq.Socket, workers: zmq.Socket, endpoint: str) -> None:
        poller = zmq.Poller()
        poller.register(agents, zmq.POLLIN)
        poller.register(workers, zmq.POLLIN)
        while not self.stop_event.is_set():
            if self._held:
                self._flush_held(workers)
            poller.modify(agents, 0 if self._held else zmq.POLLIN)  # backpressure: agents keep their events
            ready = dict(poller.poll(self.config.poll_ms // 4 if self._held else self.config.poll_ms))
            if ready.get(workers):
                self._from_workers(agents, workers)
            if ready.get(agents):
                self._from_agents(agents, workers)
            self._supervise(endpoint)

    def _from_agents(self, agents: zmq.Socket, workers: zmq.Socket) -> None:
        for _ in range(self.config.batch):
            try:
                frames = agents.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) < 2 or not self._up:
                continue  # empty message, or no worker yet: the agent resends on its timeout
            user_id = b"" if self.config.insecure else (frames[1].get("User-Id") or "").encode()
            key = user_id or frames[0].bytes
            wid = self._up[int.from_bytes(hashlib.blake2s(key, digest_size=4).digest(), "big") % len(self._up)]
            self._held.append([wid, frames[0], user_id, *frames[1:]])
            if not self._flush_held(workers):
                return

    def _flush_held(self, workers: zmq.Socket) -> bool:
        """Hand held messages to their workers in order; False when one is full (try again later)."""
        while self._held:
            message = self._held[0]
            try:
                workers.send_multipart(message, zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return False
            except zmq.ZMQError as exc:  # that worker just went away: the agent resends
                self._front.unroutable_replies += 1
                log.debug("worker %s unreachable: %s", message[0], exc)
            self._held.pop(0)
        return True

    def _from_workers(self, agents: zmq.Socket, workers: zmq.Socket) -> None:
        for _ in range(4 * self.config.batch):
            try:
                frames = workers.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            wid, rest = frames[0].bytes, frames[1:]
            if rest and rest[0].bytes == _CONTROL:
                self._control(wid, rest)
                continue
            try:
                agents.send_multipart(rest, zmq.NOBLOCK, copy=False)
            except (zmq.Again, zmq.ZMQError):  # the agent is gone or stuck: it resends
                self._front.unroutable_replies += 1

    def _control(self, wid: bytes, rest: list[zmq.Frame]) -> None:
        kind = rest[1].bytes if len(rest) > 1 else b""
        if kind == _READY and wid not in self._up:
            self._up = sorted([*self._up, wid])
            log.info("ingest worker %s ready (%d of %d)", wid.decode(), len(self._up), self.config.processes)
        elif kind == _STATS and len(rest) > 2:
            try:
                self._worker_stats[wid] = json.loads(rest[2].bytes)
            except ValueError:
                log.warning("unreadable stats from worker %s", wid.decode())


def run_ingest_processes(config: IngestConfig, settings: HubSettings, store: Any,
                         stop_event: threading.Event, timeout_s: float = 60.0) -> IngestFront:
    """Start the front in a daemon thread of this process and wait until every worker is up."""
    front = IngestFront(config, settings, store, stop_event)
    errors = start_in_thread(front, "ingest-front")
    deadline = time.monotonic() + timeout_s
    while not errors and len(front._up) < config.processes and time.monotonic() < deadline:
        time.sleep(0.05)
    if errors:
        raise RuntimeError(f"ingest failed to start on {config.bind}") from errors[0]
    if len(front._up) < config.processes:
        raise RuntimeError(f"only {len(front._up)} of {config.processes} ingest workers started in {timeout_s:.0f} s")
    return front
