"""Hub ingest throughput: the full path against a bare pyzmq DEALER/ROUTER echo, in one run.

Full path: M simulated agents (one CURVE DEALER each, a window of W events in flight, all driven from one thread)
send pre-sealed events with a ~100 KB JPEG each to a hub process running hub.ingest.loop.IngestLoop on
a real Store (SQLite in a temp dir): ZAP, CURVE, schema, manifest hashes, Ed25519 signature, JPEG
decode, evidence files, database commit, ACK. Each JPEG is made unique (a COM segment) so the
content-addressed evidence store really writes every file.

Baseline: the same clients and frames, no CURVE, against a ROUTER that answers each message with a
small ACK frame and does nothing else.

The agents run on the same machine as the hub (their CURVE encryption competes with it for CPU);
"CPU per event" separates the two, so a node's capacity with agents elsewhere is about
cores / (hub CPU per event). `--processes N` runs ingest as `hub serve --ingest-processes N` does.

Primitives: before the runs, the C work no implementation can skip is timed on one thread with the
libraries the path uses (CURVE's box on both ends, SHA-256, Ed25519, the JPEG check, the evidence file
write + sync). Their sum bounds what this machine could ingest at all, whatever the language around them;
"ratio full/ceiling" says how much of that bound the full path reaches, which compares across machines
better than events/s (these shared boxes differ by 2x from one day to the next).

The defaults stand for one hub node dedicated to ingest: 64 agents (a district has hundreds to thousands
of cameras, each with a few events in flight) and one ingest process per CPU, as `hub serve
--ingest-processes` would run it there.

    .venv/bin/python bench/ingest.py [--agents 64 --events 150 --processes 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol.bundle import DeviceBundle
from protocol.codec import EventMessage, SealedEvent, decode, seal_event
from protocol.manifest import GENESIS_HASH, Signer, sha256_hex, verify
from protocol.messages import MediaKind, MediaRef, NormBox, ProblemEvent, ProblemState


def base_jpeg(wh: tuple[int, int] = (512, 384)) -> bytes:
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (wh[1], wh[0], 3), dtype=np.uint8), (3, 3), 0)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 88])
    assert ok
    return buf.tobytes()


def unique_jpeg(base: bytes, tag: str) -> bytes:
    """`base` with a COM segment after SOI: a distinct file that decodes to the same picture."""
    payload = tag.encode()
    return base[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + base[2:]


PROBLEMS = 20


def sealed_events(bundle: DeviceBundle, count: int, base: bytes) -> list[SealedEvent]:
    signer, prev, out = Signer(bundle.sign_secret), GENESIS_HASH, []
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(count):
        jpeg = unique_jpeg(base, f"{bundle.device_id}-{n}")
        ref = MediaRef(name="snapshot.jpg", kind=MediaKind.SNAPSHOT, content_type="image/jpeg",
                       size=len(jpeg), sha256=sha256_hex(jpeg))
        # Steady state of a busy camera: 20 live problems, each re-reported (updated) over and over,
        # so dedup attaches most events to an existing case; the first of each opens it.
        k = n % PROBLEMS
        x = k / (PROBLEMS + 1)
        at = t0 + timedelta(seconds=n)
        event = ProblemEvent(event_id=f"b-{bundle.device_id}-{n:07d}", problem_id=f"p-{bundle.device_id}-{k:04d}",
                             device_id=bundle.device_id, camera_id=f"{bundle.device_id}-cam",
                             class_id="illegal_parking",
                             state=ProblemState.OPENED if n < PROBLEMS else ProblemState.UPDATED,
                             box=NormBox(x1=x, y1=0.1, x2=x + 0.02, y2=0.2), score=0.9,
                             first_seen=t0 + timedelta(seconds=k), observed_at=at, dwell_s=60, media=[ref])
        sealed = seal_event(event, {"snapshot.jpg": jpeg}, signer, seq=n + 1, prev_manifest_sha256=prev)
        prev = sealed.manifest_sha256
        out.append(sealed)
    return out


# --- servers (own processes) ---

def hub_process(data_dir: str, endpoint: str, ready: mp.Event, stop: mp.Event, out: mp.Queue,
                fsync: bool = True, processes: int = 1, workers: int | None = None) -> None:
    """The hub's ingest as `cityeye hub serve` runs it: in this process, or N worker processes on one port."""
    from hub.ingest.config import IngestConfig
    from hub.ingest.loop import IngestLoop
    from hub.ingest.processes import run_ingest_processes
    from hub.settings import HubSettings
    from hub.storage.store import Store

    store = Store.open(None, Path(data_dir), evidence_fsync=fsync)
    config = IngestConfig(bind=endpoint, data_dir=Path(data_dir), processes=processes,
                          **({} if workers is None else {"workers": workers}))
    if processes == 1:
        loop: Any = IngestLoop(config, store, stop)  # type: ignore[arg-type]
        cpu0 = _proc_cpu([os.getpid()])
        threading.Thread(target=lambda: (loop.ready.wait(), ready.set()), daemon=True).start()
        loop.run()
        cpu, stats = _proc_cpu([os.getpid()]) - cpu0, loop.stats
        peak_mb = _peak_rss_mb([os.getpid()])
    else:
        settings = HubSettings(data_dir=Path(data_dir), evidence_fsync=fsync, zmq_bind=endpoint,
                               ingest_processes=processes)
        done = threading.Event()
        pool = run_ingest_processes(config, settings, done)
        pids = [os.getpid(), *(p.pid for p in pool.procs.values())]
        cpu0 = _proc_cpu(pids)  # after the workers' start-up (imports), like the in-process case
        ready.set()
        stop.wait()
        time.sleep(1.2)  # workers report their counters about once a second
        cpu, stats = _proc_cpu(pids) - cpu0, pool.stats
        peak_mb = _peak_rss_mb(pids)
        done.set()
    out.put({"events": stats.events, "acked": stats.acked, "nacked": stats.nacked,
             "stage_s": stats.stage_s, "cpu_s": cpu, "peak_rss_mb": peak_mb})


def _proc_cpu(pids: list[int]) -> float:
    """user + system CPU seconds of these processes so far (all their threads), from /proc."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
    return total / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pids: list[int]) -> float:
    """The sum of these processes' peak resident memory (VmHWM), MB."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            total += next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return total / 1024


def echo_process(endpoint: str, ready: mp.Event, stop: mp.Event) -> None:
    with zmq.Context() as ctx, ctx.socket(zmq.ROUTER) as sock:
        sock.bind(endpoint)
        ready.set()
        while not stop.is_set():
            if not sock.poll(100):
                continue
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                sock.send_multipart([frames[0].bytes, b"CITYEYE/1", b"ACK", b"{}"])


# --- clients ---

@dataclass
class Result:
    acked: int
    latencies: list[float]
    bytes_sent: int


class Agent:
    """One simulated agent: a DEALER (CURVE client unless `bundle` is None) with up to `window` events in flight."""

    def __init__(self, ctx: zmq.Context, endpoint: str, bundle: DeviceBundle | None, events: list[SealedEvent]) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        if bundle is not None:
            self.sock.curve_secretkey = bundle.curve_secret.encode()
            self.sock.curve_publickey = bundle.curve_public.encode()
            self.sock.curve_serverkey = bundle.hub_curve_public.encode()
        self.sock.connect(endpoint)
        self.secure, self.events = bundle is not None, events
        self.sent_at: dict[int, float] = {}
        self.result = Result(0, [], 0)
        self.next = 0

    def fill(self, window: int) -> None:
        while self.next < len(self.events) and len(self.sent_at) < window:
            frames = self.events[self.next].frames
            self.sent_at[self.next] = time.perf_counter()
            self.sock.send_multipart(frames, copy=False)
            self.result.bytes_sent += sum(len(f) for f in frames)
            self.next += 1

    def take_replies(self) -> None:
        while True:
            try:
                reply = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if reply[1] != b"ACK":
                raise SystemExit(f"unexpected reply {reply[:3]}")
            seq = _seq_of(reply) if self.secure else min(self.sent_at)
            self.result.latencies.append(time.perf_counter() - self.sent_at.pop(seq))
            self.result.acked += 1

    @property
    def done(self) -> bool:
        return self.result.acked == len(self.events)


def _seq_of(reply: list[bytes]) -> int:
    import json

    return int(json.loads(reply[2])["seq"]) - 1


def drive(endpoint: str, bundles: list[DeviceBundle | None], events: list[list[SealedEvent]], window: int
          ) -> tuple[float, list[Result]]:
    """All agents from one thread and one poller, as cheap on the CPU the hub shares as the agents can be
    (real agents run on their camera boxes): CURVE encryption in libzmq's I/O thread, little Python."""
    with zmq.Context() as ctx:
        agents = [Agent(ctx, endpoint, b, ev) for b, ev in zip(bundles, events, strict=True)]
        poller = zmq.Poller()
        by_socket = {}
        for agent in agents:
            poller.register(agent.sock, zmq.POLLIN)
            by_socket[agent.sock] = agent
        t0 = time.perf_counter()
        for agent in agents:
            agent.fill(window)
        waiting = len(agents)
        while waiting:
            ready = poller.poll(30_000)
            if not ready:
                acked = sum(a.result.acked for a in agents)
                raise SystemExit(f"no ACK within 30 s ({acked} of {sum(len(e) for e in events)} acked)")
            for sock, _ in ready:
                agent = by_socket[sock]
                agent.take_replies()
                agent.fill(window)
                if agent.done:
                    poller.unregister(sock)
                    waiting -= 1
        seconds = time.perf_counter() - t0
        for agent in agents:
            agent.sock.close(0)
        return seconds, [a.result for a in agents]


def report(name: str, seconds: float, results: list[Result]) -> float:
    n = sum(r.acked for r in results)
    lat = sorted(x for r in results for x in r.latencies)
    mb = sum(r.bytes_sent for r in results) / 1e6
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    print(f"{name:<34} {n / seconds:9.0f} events/s {mb / seconds:8.1f} MB/s   ack p50 {p50:7.1f} ms"
          f"  p99 {p99:7.1f} ms   ({n} events in {seconds:.1f} s)")
    return n / seconds


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


AGENT_WORK = "CURVE encrypt (agent)"


@dataclass
class Primitives:
    """Single-thread CPU per event (µs) of the C work every event needs, measured in this run."""

    costs: dict[str, float]

    @property
    def total_us(self) -> float:
        return sum(self.costs.values())

    def ceiling(self, *, agents_here: bool = True) -> float:
        """Events/s if this machine's CPUs did nothing but this work, in parallel and perfectly shared;
        without the agents' part when they run on other machines."""
        us = self.total_us if agents_here else self.total_us - self.costs[AGENT_WORK]
        return (os.cpu_count() or 1) * 1e6 / us


def measure_primitives(base: bytes, sealed: SealedEvent, sign_public: str, evidence_root: Path, *,
                       budget_s: float = 1.0, files: int = 1000) -> Primitives:
    """What the path cannot skip, each with the library the path uses: CURVE's box (libsodium's
    crypto_box_afternm over the JPEG frame, as libzmq does per message; the agent encrypts, the hub decrypts),
    SHA-256 of the JPEG, the Ed25519 check of the manifest, the JPEG structure check, and the evidence
    file (written into the hub's evidence tree, synced in bursts of 25 and dropped from the page cache, as
    ingest does). Left out: the TCP copies (the bare echo has them), the database, all Python around them."""
    from nacl import bindings as nacl

    from hub.evidence.files import EvidenceStore
    from hub.evidence.jpeg import jpeg_error

    msg = decode(sealed.frames)
    assert isinstance(msg, EventMessage)
    jpegs = [unique_jpeg(base, f"primitives-{n}") for n in range(files // 25 * 25)]  # no event's file
    public, secret = nacl.crypto_box_keypair()
    key, nonce = nacl.crypto_box_beforenm(public, secret), bytes(24)
    boxed = nacl.crypto_box_afternm(jpegs[0], nonce, key)
    store = EvidenceStore(evidence_root)
    digests = [sha256_hex(j) for j in jpegs]

    def timed(fn: Any, rounds: int = 5) -> float:
        """The median of a few rounds: a neighbour's burst on this shared box spoils a round, not the figure."""
        fn(0)
        calls, per_round = 0, []
        for _ in range(rounds):
            start, t0 = calls, time.process_time()
            while (spent := time.process_time() - t0) < budget_s / rounds:
                calls += 1
                fn(calls)
            per_round.append(spent / (calls - start) * 1e6)
        return statistics.median(per_round)

    costs = {
        AGENT_WORK: timed(lambda _: nacl.crypto_box_afternm(jpegs[0], nonce, key)),
        "CURVE decrypt": timed(lambda _: nacl.crypto_box_open_afternm(boxed, nonce, key)),
        "SHA-256": timed(lambda _: sha256_hex(jpegs[0])),
        "Ed25519": timed(lambda _: verify(sign_public, msg.manifest_bytes, msg.signature)),
        "JPEG check": timed(lambda k: jpeg_error(jpegs[k % len(jpegs)])),
    }
    # Each JPEG once (a name that exists is not written again), in ingest's bursts of 25.
    per_burst = []
    for k in range(0, len(jpegs), 25):
        t0 = time.process_time()
        store.finish(store.stage([(j, None) for j in jpegs[k:k + 25]], digests=digests[k:k + 25]))
        per_burst.append((time.process_time() - t0) / 25 * 1e6)
    costs["evidence file"] = statistics.median(per_burst)
    store.close()
    return Primitives(costs)


def make_evidence_tree(root: Path) -> None:
    """The hub's steady state: every xx/yy leaf directory of the content-addressed store exists."""
    print("creating the 65,536 evidence leaf directories (steady state) ...", file=sys.stderr)
    for a in range(256):
        for b in range(256):
            (root / f"{a:02x}" / f"{b:02x}").mkdir(parents=True, exist_ok=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=64, help="simulated agents (M)")
    parser.add_argument("--events", type=int, default=150,
                        help="events per agent (all are sealed in memory first: agents x events x ~93 KB)")
    parser.add_argument("--window", type=int, default=8, help="events in flight per agent")
    parser.add_argument("--no-fsync", action="store_true", help="evidence_fsync=False (not power-cut safe)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="hub ingest worker processes (1: in-process; default: one per CPU)")
    parser.add_argument("--check-threads", type=int, default=None,
                        help="threads per ingest process for hashes, signatures, JPEG checks (IngestConfig.workers; "
                             "default: IngestConfig.check_threads)")
    parser.add_argument("--fresh-tree", action="store_true",
                        help="start with an empty evidence tree: nearly every file then creates its directory "
                             "(a new hub); by default the 65,536 leaf directories exist, as on a hub past its "
                             "first ~700,000 files")
    args = parser.parse_args()

    from hub.devices.enrol import enroll_device
    from hub.storage.store import Store

    mpctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="cityeye-bench-") as tmp:
        data_dir = Path(tmp) / "hub"
        endpoint, echo_endpoint = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
        store = Store.open(None, data_dir)
        if not args.fresh_tree:
            make_evidence_tree(data_dir / "evidence")
        bundles = [enroll_device(store, data_dir, f"bench{i}", endpoint) for i in range(args.agents)]
        store.close()
        base = base_jpeg()
        print(f"sealing {args.agents} x {args.events} events with a {len(base) / 1024:.0f} KB JPEG each ...",
              file=sys.stderr)
        events = [sealed_events(b, args.events, base) for b in bundles]
        print("measuring the primitives (CURVE box, SHA-256, Ed25519, JPEG check, evidence file) ...", file=sys.stderr)
        primitives = measure_primitives(base, events[0][0], bundles[0].sign_public, data_dir / "evidence")

        ready, stop = mpctx.Event(), mpctx.Event()
        echo = mpctx.Process(target=echo_process, args=(echo_endpoint, ready, stop))
        echo.start()
        ready.wait(30)
        bare_s, bare = drive(echo_endpoint, [None] * args.agents, events, args.window)
        stop.set()
        echo.join(10)

        ready, stop, hub_stats = mpctx.Event(), mpctx.Event(), mpctx.Queue()
        hub = mpctx.Process(target=hub_process, args=(str(data_dir), endpoint, ready, stop, hub_stats,
                                                       not args.no_fsync, args.processes, args.check_threads))
        hub.start()
        ready.wait(30)
        cpu0 = _cpu()
        full_s, full = drive(endpoint, list(bundles), events, args.window)
        agents_cpu = _cpu() - cpu0
        stop.set()
        stats = hub_stats.get(timeout=30)
        hub.join(10)

        print(f"M={args.agents} agents, window {args.window}, {len(base) / 1024:.0f} KB JPEG per event, "
              f"{args.processes} ingest process(es), "
              f"evidence fsync {'off' if args.no_fsync else 'on'}, "
              f"evidence tree {'empty' if args.fresh_tree else 'complete'}, {mp.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")
        bare_rate = report("bare DEALER/ROUTER echo", bare_s, bare)
        full_rate = report("full path (CURVE+sig+JPEG+store)", full_s, full)
        n = max(1, stats["acked"])
        stages = "  ".join(f"{k} {v / n * 1000:.2f}" for k, v in stats["stage_s"].items())
        print(f"hub time per event (ms, wall, parallel stages overlap threads): {stages}")
        print(f"CPU per event (ms, user+sys): hub {stats['cpu_s'] / n * 1000:.2f}, agents "
              f"{agents_cpu / n * 1000:.2f}; busy {(stats['cpu_s'] + agents_cpu) / full_s:.2f} of "
              f"{os.cpu_count()} CPUs; hub peak memory {stats['peak_rss_mb']:.0f} MB (RSS, all its processes)")
        per_core = n / stats["cpu_s"] if stats["cpu_s"] else float("nan")
        print(f"per hub core (1 / hub CPU per event): {per_core:.0f} events/s; 2000 events/s would take "
              f"about {2000 / per_core:.1f} cores of ingest processes with the agents on other machines "
              f"(derived, not measured: this box has {os.cpu_count()})")
        costs = ", ".join(f"{k} {v:.0f}" for k, v in primitives.costs.items())
        print(f"primitives per event (µs of one thread, measured above): {costs}; sum {primitives.total_us:.0f}")
        print(f"ceiling for that work alone on {os.cpu_count()} CPUs: {primitives.ceiling():.0f} events/s "
              f"({primitives.ceiling(agents_here=False):.0f} with the agents elsewhere); ratio full/ceiling: "
              f"{full_rate / primitives.ceiling():.3f}")
        print(f"ratio full/bare: {full_rate / bare_rate:.3f}   target >= 2000 events/s: "
              f"{'met' if full_rate >= 2000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
