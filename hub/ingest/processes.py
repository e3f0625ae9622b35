"""Ingest over several processes that share the agents' TCP port (Linux SO_REUSEPORT).

One Python process checks and stores at most what one core's worth of GIL allows (decoding, the JPEG
walk and the database are Python). With `IngestConfig.processes` > 1 the hub starts N worker processes,
each a complete `hub.ingest.loop.IngestLoop` with its own CURVE ROUTER, ZAP handler and store connection, all
accepting on the same port: each worker listens on its own socket with SO_REUSEPORT, handed to libzmq
(ZMQ_USE_FD), and the kernel spreads new agent connections over the listeners. No process sits in
between, so a message costs no extra hop, copy or Python. The checks, the evidence writes, the commits
and the ACK-after-commit rule are exactly those of one process.

A device's messages go to the worker that holds its connection; after a reconnect they may go to
another. Each worker follows the hash chain of what it stored itself (only a direct successor is
checked, so a move loses nothing but one check), and events are idempotent on (device id, event id),
so an event resent to another worker is stored once.

The hub's own process keeps the port reserved (bound, never listening, so it is never given a
connection), restarts a worker that dies, and sums the counters each worker sends about once a second
over its own pipe. The agents whose connections a dead worker held reconnect to the others and resend
what it had not ACKed; nothing is lost or doubled.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing as mp
import os
import socket
import threading
import time
from dataclasses import asdict, fields
from multiprocessing.connection import Connection, wait
from typing import Any

from hub.ingest.config import IngestConfig, tcp_host_port
from hub.ingest.loop import IngestLoop, IngestStats, start_in_thread
from hub.settings import HubSettings

log = logging.getLogger(__name__)

_RESTART_DELAY_S = 1.0
_READY = "ready"
_ORPHANS_STOP_S = 5.0  # workers of a hub killed with -9 notice within poll_ms, then finish their burst


class PortInUse(RuntimeError):
    """Another program or hub holds the ingest port."""


def shared_port_socket(endpoint: str, *, listen: bool) -> socket.socket:
    """A TCP socket with SO_REUSEPORT bound to `endpoint` (tcp://HOST:PORT; port 0 or *: a free one).

    listen=False reserves the port for the workers: a socket that never listens is never given a
    connection. It binds before it allows port sharing, so a port that another program (or another hub)
    holds is refused instead of silently shared; the workers (listen=True) join it."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise RuntimeError("several ingest processes need SO_REUSEPORT (Linux); run one ingest process here")
    host, port = tcp_host_port(endpoint)
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise RuntimeError(f"ingest endpoint {endpoint!r}: host {host!r} does not resolve: {exc}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind at once after a restart
        if listen:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if not listen:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # from now on the workers may join
        else:
            sock.setblocking(False)  # libzmq's I/O thread accepts on it
            sock.listen(256)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"ingest endpoint {endpoint!r}: the port is in use (another hub, or another "
                            f"program)") from None
        raise
    return sock


def _reserve(endpoint: str) -> socket.socket:
    """The port reservation, waiting a little for the workers of a hub that was just killed (they stop
    by themselves once orphaned) before calling the port taken."""
    deadline = time.monotonic() + _ORPHANS_STOP_S
    while True:
        try:
            return shared_port_socket(endpoint, listen=False)
        except PortInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def endpoint_of(sock: socket.socket) -> str:
    """tcp://HOST:PORT of a bound socket (the port chosen when 0 was asked for)."""
    host, port = sock.getsockname()[:2]
    return f"tcp://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"tcp://{host}:{port}"


class _Link:
    """The worker side (hub.ingest.loop.WorkerLink): the shared port, and a pipe to the parent."""

    def __init__(self, endpoint: str, conn: Connection, report_every_s: float = 1.0) -> None:
        self.endpoint, self.conn, self.every = endpoint, conn, report_every_s
        self._next = 0.0

    def listen(self) -> int:
        return shared_port_socket(self.endpoint, listen=True).detach()

    def ready(self) -> None:
        self.conn.send(_READY)

    def report(self, stats: IngestStats) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.every
            self.conn.send(asdict(stats))


class _StopWhenOrphaned:
    """The worker's stop flag: set by the parent, or the parent's process is gone (no orphans)."""

    def __init__(self, stop: Any) -> None:
        self.stop, self.parent = stop, os.getppid()

    def is_set(self) -> bool:
        return bool(self.stop.is_set()) or os.getppid() != self.parent


def worker_main(settings: HubSettings, config: IngestConfig, index: int, conn: Connection, stop: Any) -> None:
    """Entry point of a worker process: its own store and one IngestLoop on the shared port."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s ingest-w{index} %(name)s: %(message)s")
    from hub.storage.store import Store  # here: the parent never opens a store for its workers

    store = Store.from_settings(settings)
    try:
        loop = IngestLoop(config, store, _StopWhenOrphaned(stop), link=_Link(config.bind, conn))  # type: ignore[arg-type]
        loop.run()
    finally:
        store.close()


class IngestProcesses:
    """N ingest worker processes on one port; `run()` blocks until `stop_event` is set."""

    def __init__(self, config: IngestConfig, settings: HubSettings, stop_event: threading.Event) -> None:
        self.config, self.settings, self.stop_event = config, settings, stop_event
        self.ready = threading.Event()
        self.endpoint = config.bind  # the concrete port once reserved
        self.up: set[int] = set()  # workers bound and serving
        self.procs: dict[int, Any] = {}
        self.worker_stats: dict[int, dict[str, Any]] = {}
        self._retired: list[dict[str, Any]] = []  # last counters of workers that were restarted
        self._pipes: dict[int, Connection] = {}
        self._restart_at: dict[int, float] = {}
        self._mp = mp.get_context("spawn")
        self._mp_stop = self._mp.Event()

    @property
    def stats(self) -> IngestStats:
        """The workers' counters summed, those of workers since restarted included."""
        total = IngestStats()
        for s in [*self._retired, *list(self.worker_stats.values())]:
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
        holder = _reserve(self.config.bind)  # keeps the port while workers restart
        self.endpoint = endpoint_of(holder)
        self.config = self.config.model_copy(update={"bind": self.endpoint})
        try:
            for i in range(self.config.processes):
                self._start_worker(i)
            self.ready.set()
            while not self.stop_event.is_set():
                self._poll(self.config.poll_ms / 1000)
                self._supervise()
        finally:
            self._stop_workers()
            holder.close()

    def _start_worker(self, index: int) -> None:
        receive, send = self._mp.Pipe(duplex=False)  # one per worker: a kill -9 spoils only its own
        proc = self._mp.Process(target=worker_main, name=f"cityeye-ingest-w{index}",
                                args=(self.settings, self.config, index, send, self._mp_stop), daemon=True)
        proc.start()
        send.close()
        self.procs[index], self._pipes[index] = proc, receive

    def _poll(self, timeout_s: float) -> None:
        """Read what the workers sent; wakes at once when one dies (its sentinel)."""
        by_pipe = {conn: i for i, conn in self._pipes.items()}
        sentinels = [p.sentinel for i, p in self.procs.items() if i not in self._restart_at]  # dead: stays ready
        for ready in wait([*by_pipe, *sentinels], timeout_s):
            index = by_pipe.get(ready)  # type: ignore[call-overload]
            if index is None:
                continue
            try:
                while ready.poll():  # type: ignore[union-attr]
                    self._received(index, ready.recv())  # type: ignore[union-attr]
            except (EOFError, OSError):  # the worker is gone: _supervise restarts it
                self._pipes.pop(index).close()
                self.up.discard(index)

    def _received(self, index: int, message: Any) -> None:
        if message == _READY:
            self.up.add(index)
            if index in self.worker_stats:  # a restarted worker counts from zero: keep what the last one said
                self._retired.append(self.worker_stats[index])
            self.worker_stats[index] = asdict(IngestStats())
            log.info("ingest worker %d serving %s (%d of %d)", index, self.endpoint, len(self.up),
                     self.config.processes)
        elif isinstance(message, dict):
            self.worker_stats[index] = message

    def _supervise(self) -> None:
        """Restart a worker that died (after a short delay, so a crash loop does not spin)."""
        now = time.monotonic()
        for index, proc in list(self.procs.items()):
            if proc.is_alive():
                continue
            self.up.discard(index)
            due = self._restart_at.setdefault(index, now + _RESTART_DELAY_S)
            if now < due:
                continue
            log.error("ingest worker %d exited (code %s); restarting it", index, proc.exitcode)
            del self._restart_at[index]
            if index in self._pipes:
                self._pipes.pop(index).close()
            self._start_worker(index)

    def _stop_workers(self) -> None:
        self._mp_stop.set()
        for proc in self.procs.values():
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        for conn in self._pipes.values():
            conn.close()


def run_ingest_processes(config: IngestConfig, settings: HubSettings, stop_event: threading.Event,
                         timeout_s: float = 60.0) -> IngestProcesses:
    """Start the workers (supervised from a daemon thread of this process); wait until all serve."""
    pool = IngestProcesses(config, settings, stop_event)
    errors = start_in_thread(pool, "ingest-processes")
    deadline = time.monotonic() + timeout_s
    while not errors and len(pool.up) < config.processes and time.monotonic() < deadline:
        time.sleep(0.05)
    if errors:
        raise RuntimeError(f"ingest failed to start on {config.bind}") from errors[0]
    if len(pool.up) < config.processes:
        raise RuntimeError(f"only {len(pool.up)} of {config.processes} ingest workers started in {timeout_s:.0f} s")
    return pool
