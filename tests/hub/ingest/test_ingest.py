"""Hub ingest over real CURVE sockets: auth, revocation, tampering, malformed and oversized input.

The hub runs in a thread on a real Store (SQLite in tmp); clients are real DEALER sockets. Tests marked
with BOTH_MODES run twice: ingest in the hub's process (checks on a pool), and two worker processes sharing
the port (hub.ingest_processes; checks inline on each socket thread), which must behave the same to an agent.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zmq
from pydantic import ValidationError
from sqlalchemy import func, select

from hub.devices.enrol import enroll_device
from hub.ingest.config import IngestConfig, tcp_host_port
from hub.ingest.loop import IngestLoop, run_ingest
from hub.ingest.processes import IngestProcesses, run_ingest_processes, shared_port_socket
from hub.settings import HubSettings
from hub.storage import schema
from hub.storage.store import Store
from protocol.bundle import DeviceBundle
from protocol.codec import PROTOCOL_ID, Command, ReplyMessage, decode, encode_heartbeat, seal_event
from protocol.manifest import GENESIS_HASH, Signer, sha256_hex
from protocol.messages import CameraHealth, Heartbeat
from tests.delivery_support import free_port, make_event, small_jpeg

JPEG = small_jpeg()


@dataclass
class Hub:
    store: Store
    data_dir: Path
    endpoint: str
    loop: IngestLoop | IngestProcesses

    def enroll(self, device_id: str) -> DeviceBundle:
        return enroll_device(self.store, self.data_dir, device_id, self.endpoint)

    def event_ids(self, device_id: str) -> list[str]:
        with self.store.engine.connect() as conn:
            q = select(schema.events.c.event_id).where(schema.events.c.device_id == device_id)
            return list(conn.execute(q).scalars())

    def evidence_files(self) -> int:
        return sum(1 for p in (self.data_dir / "evidence").rglob("*") if p.is_file())


def start_hub(tmp_path: Path, processes: int = 1, **config: object) -> Iterator[Hub]:
    data_dir = tmp_path / "hub"
    store = Store.open(None, data_dir)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    stop = threading.Event()
    ingest_config = IngestConfig(bind=endpoint, data_dir=data_dir, device_refresh_s=0.2, processes=processes,
                                 **config)
    loop: IngestLoop | IngestProcesses
    if processes == 1:
        loop = run_ingest(ingest_config, store, stop)
    else:
        settings = HubSettings(data_dir=data_dir, zmq_bind=endpoint, ingest_processes=processes)
        loop = run_ingest_processes(ingest_config, settings, stop)
    try:
        yield Hub(store, data_dir, endpoint, loop)
    finally:
        stop.set()
        time.sleep(0.3)
        if isinstance(loop, IngestProcesses):
            for proc in loop.procs.values():
                proc.join(10)
        store.close()


@pytest.fixture
def hub(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Hub]:
    processes = getattr(request, "param", 1)
    # Both ways of checking: in-process on the checker thread and its pool (4 threads), and in each worker
    # process on the socket thread itself (one check thread, as several processes on few cores run).
    yield from start_hub(tmp_path, processes=processes, **({"workers": 1} if processes > 1 else {}))


BOTH_MODES = pytest.mark.parametrize("hub", [1, 2], ids=["in-process-check-pool", "2-worker-processes-inline-checks"],
                                     indirect=True)


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Counters of worker processes reach the hub's process about once a second."""
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


class Client:
    """A bare DEALER with a device's CURVE keys: sends exactly the frames a test gives it."""

    def __init__(self, bundle: DeviceBundle, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.curve_secretkey = bundle.curve_secret.encode()
        self.sock.curve_publickey = bundle.curve_public.encode()
        self.sock.curve_serverkey = bundle.hub_curve_public.encode()
        self.sock.connect(endpoint)
        self.bundle = bundle
        self.seq = 0
        self.prev = GENESIS_HASH

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()

    def sealed(self, n: int, device_id: str | None = None, signer: Signer | None = None) -> list[bytes]:
        event, media = make_event(device_id or self.bundle.device_id, n, JPEG)
        self.seq += 1
        sealed = seal_event(event, media, signer or Signer(self.bundle.sign_secret), seq=self.seq,
                            prev_manifest_sha256=self.prev)
        self.prev = sealed.manifest_sha256
        return sealed.frames

    def request(self, frames: list[bytes], timeout: float = 5.0) -> ReplyMessage | None:
        self.sock.send_multipart(frames)
        if not self.sock.poll(int(timeout * 1000)):
            return None
        reply = decode(self.sock.recv_multipart())
        assert isinstance(reply, ReplyMessage)
        return reply


@pytest.fixture
def client(hub: Hub) -> Iterator[Client]:
    c = Client(hub.enroll("dev1"), hub.endpoint)
    yield c
    c.close()


@BOTH_MODES
def test_event_is_acked_after_commit_and_duplicate_reacked(hub: Hub, client: Client) -> None:
    frames = client.sealed(1)
    first = client.request(frames)
    assert first is not None and first.command is Command.ACK and not first.reply.duplicate
    assert first.reply.case_id is not None
    assert hub.event_ids("dev1") == ["ev-dev1-000001"]
    again = client.request(frames)
    assert again is not None and again.command is Command.ACK and again.reply.duplicate
    assert hub.event_ids("dev1") == ["ev-dev1-000001"]


@BOTH_MODES
def test_unenrolled_key_is_refused_at_handshake(hub: Hub, tmp_path: Path) -> None:
    other = Store.open(None, tmp_path / "other")
    stranger = enroll_device(other, tmp_path / "other", "dev1", hub.endpoint)  # right name, wrong keys
    stranger = stranger.model_copy(update={"hub_curve_public": hub.enroll("devX").hub_curve_public})
    c = Client(stranger, hub.endpoint)
    try:
        assert c.request(c.sealed(1), timeout=1.5) is None
    finally:
        c.close()
        other.close()
    assert hub.event_ids("dev1") == []


@BOTH_MODES
def test_revoked_device_is_dropped_on_live_connection_and_refused_after(hub: Hub, client: Client) -> None:
    reply = client.request(client.sealed(1))
    assert reply is not None and reply.command is Command.ACK
    hub.store.revoke_device("dev1")
    time.sleep(0.3)  # > device_refresh_s: the hub's view of the registry is refreshed
    assert client.request(client.sealed(2), timeout=1.0) is None
    assert eventually(lambda: hub.loop.stats.dropped_unauthorised >= 1)
    fresh = Client(client.bundle, hub.endpoint)
    try:
        assert fresh.request(fresh.sealed(3), timeout=1.0) is None
    finally:
        fresh.close()
    assert hub.event_ids("dev1") == ["ev-dev1-000001"]


@BOTH_MODES
def test_tampered_jpeg_is_nacked_and_nothing_stored(hub: Hub, client: Client) -> None:
    frames = client.sealed(1)
    jpeg = bytearray(frames[4])
    jpeg[len(jpeg) // 2] ^= 0x55
    frames[4] = bytes(jpeg)
    reply = client.request(frames)
    assert reply is not None and reply.command is Command.NACK
    assert reply.reply.event_id == "ev-dev1-000001" and reply.reply.seq == 1
    assert "snapshot.jpg" in (reply.reply.reason or "") and "SHA-256" in (reply.reply.reason or "")
    assert hub.event_ids("dev1") == [] and hub.evidence_files() == 0


def test_tampered_manifest_fails_signature(hub: Hub, client: Client) -> None:
    frames = client.sealed(1)
    forged = frames[5].replace(b'"seq":1', b'"seq":1 ')  # same meaning, other signed bytes
    header = json.loads(frames[2])
    header["manifest_sha256"] = sha256_hex(forged)  # consistent framing: only the signature can tell
    frames[2], frames[5] = json.dumps(header).encode(), forged
    reply = client.request(frames)
    assert reply is not None and reply.command is Command.NACK
    assert "signature does not verify" in (reply.reply.reason or "")
    assert hub.event_ids("dev1") == [] and hub.evidence_files() == 0


def test_event_signed_by_another_device_key_is_nacked(hub: Hub, client: Client) -> None:
    other = hub.enroll("dev2")
    reply = client.request(client.sealed(1, signer=Signer(other.sign_secret)))
    assert reply is not None and reply.command is Command.NACK
    assert "signature" in (reply.reply.reason or "")


@BOTH_MODES
def test_device_id_must_match_zap_user_id(hub: Hub, client: Client) -> None:
    other = hub.enroll("dev2")
    frames = client.sealed(1, device_id="dev2", signer=Signer(other.sign_secret))  # valid for dev2
    reply = client.request(frames)
    assert reply is not None and reply.command is Command.NACK
    assert "not the authenticated device 'dev1'" in (reply.reply.reason or "")
    assert hub.event_ids("dev2") == []


def test_jpeg_that_does_not_decode_is_nacked(hub: Hub, client: Client) -> None:
    from protocol.messages import MediaKind, MediaRef

    event, _ = make_event("dev1", 1, JPEG)
    junk = b"\xff\xd8" + b"not a jpeg at all" * 50
    ref = MediaRef(name="snapshot.jpg", kind=MediaKind.SNAPSHOT, content_type="image/jpeg", size=len(junk),
                   sha256=sha256_hex(junk))
    event = event.model_copy(update={"media": [ref]})
    frames = seal_event(event, {"snapshot.jpg": junk}, Signer(client.bundle.sign_secret), seq=1,
                        prev_manifest_sha256=GENESIS_HASH).frames
    reply = client.request(frames)
    assert reply is not None and reply.command is Command.NACK
    assert "JPEG does not decode" in (reply.reply.reason or "")


@BOTH_MODES
def test_broken_hash_chain_is_nacked(hub: Hub, client: Client) -> None:
    assert (r := client.request(client.sealed(1))) is not None and r.command is Command.ACK
    client.prev = "1" * 64
    reply = client.request(client.sealed(2))
    assert reply is not None and reply.command is Command.NACK
    assert "hash chain broken" in (reply.reply.reason or "")


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([b"hello"], "at least 2 frames"),
        ([b"GET / HTTP/1.1", b"EVENT"], "frame 0: unknown protocol"),
        ([PROTOCOL_ID, b"EXPLODE", b"{}"], "frame 1: unknown command"),
        ([PROTOCOL_ID, b"EVENT", b"{}", b"", b"", b""], "frame 2: EventHeader is not valid"),
        ([PROTOCOL_ID, b"ACK", b"{}"], "hub reply, not accepted"),
        ([PROTOCOL_ID, b"HEARTBEAT", b"\x80\x04pickle"], "frame 2: Heartbeat is not valid"),
    ],
)
def test_malformed_frames_get_an_error_and_hub_serves_others(hub: Hub, client: Client, frames: list[bytes],
                                                             reason: str) -> None:
    reply = client.request(frames)
    assert reply is not None and reply.command is Command.NACK and reason in (reply.reply.reason or "")
    other = Client(hub.enroll("dev2"), hub.endpoint)
    try:
        ok = other.request(other.sealed(1))
        assert ok is not None and ok.command is Command.ACK
    finally:
        other.close()


def test_oversized_messages_are_refused_and_hub_serves_others(tmp_path: Path) -> None:
    for small_hub in start_hub(tmp_path, max_media_bytes=len(JPEG) - 1):
        big = Client(small_hub.enroll("dev1"), small_hub.endpoint)
        try:
            reply = big.request(big.sealed(1))
            assert reply is not None and reply.command is Command.NACK
            assert "limit" in (reply.reply.reason or "")
            # Far over MAXMSGSIZE: libzmq cuts the connection; no reply, and nothing breaks.
            big.sock.send_multipart([PROTOCOL_ID, b"EVENT", b"x" * (4 * len(JPEG))])
            other = Client(small_hub.enroll("dev2"), small_hub.endpoint)
            tiny = small_jpeg(1, (8, 8))
            event, media = make_event("dev2", 1, tiny)
            frames = seal_event(event, media, Signer(other.bundle.sign_secret), seq=1,
                                prev_manifest_sha256=GENESIS_HASH).frames
            ok = other.request(frames)
            other.close()
            assert ok is not None and ok.command is Command.ACK
        finally:
            big.close()
        assert small_hub.event_ids("dev1") == []


@BOTH_MODES
def test_heartbeat_updates_device_and_camera_state(hub: Hub, client: Client) -> None:
    hb = Heartbeat(device_id="dev1", sent_at=datetime.now(UTC), agent_version="9.9",
                   cameras=[CameraHealth(camera_id="cam7", online=True, decode_fps=5.0)])
    client.sock.send_multipart(encode_heartbeat(hb))
    assert eventually(lambda: (hub.store.get_device("dev1").agent_version == "9.9"))
    device = hub.store.get_device("dev1")
    assert device is not None and device.last_seen is not None
    with hub.store.engine.connect() as conn:
        cams = conn.execute(select(func.count()).select_from(schema.cameras)
                            .where(schema.cameras.c.camera_id == "cam7", schema.cameras.c.online.is_(True))).scalar()
    assert cams == 1


def test_a_newer_agents_heartbeat_is_taken_with_its_unknown_fields_set_aside(
        hub: Hub, client: Client, caplog: pytest.LogCaptureFixture) -> None:
    """An old/new mix: an agent one release ahead adds health fields; this hub records what it knows
    and says once which fields it set aside."""
    caplog.set_level("INFO", logger="hub.ingest.loop")
    hb = Heartbeat(device_id="dev1", sent_at=datetime.now(UTC), agent_version="9.10",
                   cameras=[CameraHealth(camera_id="cam8", online=True, decode_fps=5.0)])
    body = json.loads(hb.model_dump_json())
    body["cameras"][0]["gop_s"] = 2.0
    for _ in range(3):
        client.sock.send_multipart([PROTOCOL_ID, b"HEARTBEAT", json.dumps(body).encode()])
    assert eventually(lambda: hub.store.get_device("dev1").agent_version == "9.10")
    assert eventually(lambda: hub.loop.stats.heartbeats == 3)
    with hub.store.engine.connect() as conn:
        health = conn.execute(select(schema.cameras.c.health).where(schema.cameras.c.camera_id == "cam8")).scalar()
    assert health is not None and health["decode_fps"] == 5.0 and "gop_s" not in health
    said = [r.getMessage() for r in caplog.records if "does not know" in r.getMessage()]
    assert len(said) == 1 and "gop_s" in said[0], said


def test_a_burst_of_heartbeats_is_written_once_with_the_latest(hub: Hub, client: Client,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Heartbeats are written together at most once a second (heartbeat_flush_s): 50 quick ones from one
    device all count, a few transactions hold them, and what is stored is the last."""
    writes: list[int] = []
    real = hub.store.record_heartbeats
    monkeypatch.setattr(hub.store, "record_heartbeats", lambda beats: (writes.append(len(beats)), real(beats))[1])
    for i in range(50):
        client.sock.send_multipart(encode_heartbeat(Heartbeat(
            device_id="dev1", sent_at=datetime.now(UTC), agent_version=f"1.{i}",
            cameras=[CameraHealth(camera_id="cam7", online=i % 2 == 1)])))
    assert eventually(lambda: hub.loop.stats.heartbeats == 50)
    assert eventually(lambda: hub.store.get_device("dev1").agent_version == "1.49", 3)
    with hub.store.engine.connect() as conn:
        cams = schema.cameras
        assert conn.execute(select(cams.c.online).where(cams.c.camera_id == "cam7")).scalar() is True
    assert 1 <= len(writes) <= 4 and sum(writes) == len(writes)  # one device: one row per write


def test_insecure_mode_only_when_asked_and_still_checks_signatures(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    from edge_agent.deliver import Outbox, OutboxConfig

    with caplog.at_level("WARNING"):
        for lab in start_hub(tmp_path, insecure=True):
            bundle = lab.enroll("dev1")
            config = OutboxConfig(spool_dir=tmp_path / "spool", insecure=True, ack_timeout_s=1.0)
            with Outbox(bundle, config) as outbox:
                outbox.submit(*make_event("dev1", 1, JPEG))
                assert outbox.wait_drained(10)
            assert lab.event_ids("dev1") == ["ev-dev1-000001"]
            # Without CURVE anyone can claim to be dev1, but can't sign as dev1.
            ctx = zmq.Context()
            sock = ctx.socket(zmq.DEALER)
            sock.linger = 0
            sock.connect(lab.endpoint)
            event, media = make_event("dev1", 2, JPEG)
            forged = seal_event(event, media, Signer(lab.enroll("dev2").sign_secret), seq=2,
                                prev_manifest_sha256=GENESIS_HASH)
            sock.send_multipart(forged.frames)
            assert sock.poll(5000)
            reply = decode(sock.recv_multipart())
            sock.close(0)
            ctx.term()
            assert isinstance(reply, ReplyMessage) and reply.command is Command.NACK
            assert "signature" in (reply.reply.reason or "")
    assert "INSECURE ingest" in caplog.text and "INSECURE delivery" in caplog.text


def test_worker_killed_mid_stream_is_restarted_and_every_event_stored_once(tmp_path: Path) -> None:
    """kill -9 of the busiest of two ingest workers while four agents stream: its agents reconnect to the
    same port and land on the other worker, which stores what the dead one had not ACKed; the dead one is
    restarted on the same port; each event is in the database exactly once."""
    import os
    import signal

    from edge_agent.deliver import Outbox, OutboxConfig

    n, devices = 200, [f"dev{i}" for i in range(4)]
    for h in start_hub(tmp_path, processes=2):
        pool = h.loop
        assert isinstance(pool, IngestProcesses)

        def stored() -> int:
            return sum(len(h.event_ids(d)) for d in devices)  # noqa: B023

        def acked(index: int) -> int:
            return int(pool.worker_stats.get(index, {}).get("acked", 0))  # noqa: B023

        outboxes = [Outbox(h.enroll(d), OutboxConfig(spool_dir=tmp_path / d, ack_timeout_s=1.0, max_backoff_s=2.0))
                    for d in devices]
        try:
            for outbox in outboxes:
                outbox.__enter__()

            def submit_all() -> None:
                for i in range(n):
                    for d, outbox in zip(devices, outboxes):  # noqa: B023
                        outbox.submit(*make_event(d, i, small_jpeg(i)))

            submitter = threading.Thread(target=submit_all)
            submitter.start()
            # Early enough that a fast box cannot store all 4 * n before the kill (n // 2 was seen to be too late).
            assert eventually(lambda: stored() >= n // 8 and acked(0) + acked(1) > 0, 60)
            busiest = max((0, 1), key=acked)  # the kernel spreads connections: kill one that holds some
            victim = pool.procs[busiest]
            os.kill(victim.pid, signal.SIGKILL)
            assert stored() < 4 * n, "the worker must die mid-stream for this test to mean anything"
            submitter.join()
            for outbox in outboxes:
                assert outbox.wait_drained(90), f"spool not drained: {outbox.spool.stats()}"
        finally:
            for outbox in outboxes:
                outbox.__exit__(None, None, None)
        # The other worker may drain everything before the restart delay is over.
        assert eventually(lambda: pool.procs[busiest].pid != victim.pid, 30), "the dead worker must be restarted"  # noqa: B023
        assert eventually(lambda: busiest in pool.up, 30), "the restarted worker must listen again"  # noqa: B023
        for d in devices:
            assert sorted(h.event_ids(d)) == [f"ev-{d}-{i:06d}" for i in range(n)]


def test_check_threads_default_to_the_cores_each_process_has(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With several processes, more check threads than a process's share of the cores only pass the GIL
    around; an explicit `workers` is kept, also in the copy a spawned worker process receives."""
    import os
    import pickle

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    bind = "tcp://127.0.0.1:7755"
    assert IngestConfig(bind=bind, data_dir=tmp_path).check_threads == 4  # one process: `workers`
    assert IngestConfig(bind=bind, data_dir=tmp_path, processes=4).check_threads == 2
    assert IngestConfig(bind=bind, data_dir=tmp_path, processes=16).check_threads == 1
    explicit = pickle.loads(pickle.dumps(IngestConfig(bind=bind, data_dir=tmp_path, processes=4, workers=3)))
    assert explicit.check_threads == 3


class HeldStore:
    """The real store, whose commits wait until the test opens `gate`: what ingest takes in meanwhile shows
    how far its in-store limits let it read ahead."""

    def __init__(self, store: Store) -> None:
        self.store, self.gate = store, threading.Event()

    def ingest_events(self, items: list[object]) -> list[object]:
        assert self.gate.wait(30), "the test never opened the gate"
        return self.store.ingest_events(items)

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


@pytest.mark.parametrize("limit", ["events", "bytes"])
def test_ingest_stops_reading_at_its_in_store_limits_and_loses_nothing(tmp_path: Path, limit: str) -> None:
    """While 3 events (by count, or by size: the event that crosses the byte limit is still taken) wait for
    their commit, the other 9 stay with libzmq and TCP; once the store moves, every event is stored and ACKed."""
    data_dir = tmp_path / "hub"
    store = Store.open(None, data_dir)
    held = HeldStore(store)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    client = Client(enroll_device(store, data_dir, "dev1", endpoint), endpoint)
    events = [client.sealed(n) for n in range(12)]
    size = sum(len(f) for f in events[0])
    limits = {"max_in_store": 3} if limit == "events" else {"max_in_store_bytes": int(2.5 * size)}
    stop = threading.Event()
    loop = run_ingest(IngestConfig(bind=endpoint, data_dir=data_dir, **limits), held, stop)
    try:
        for frames in events:
            client.sock.send_multipart(frames)
        assert eventually(lambda: loop.stats.events >= 3)
        time.sleep(0.5)  # time enough to read the rest, were it allowed to
        assert loop.stats.events == 3
        held.gate.set()
        replies = []
        while len(replies) < 12 and client.sock.poll(10_000):
            reply = decode(client.sock.recv_multipart())
            assert isinstance(reply, ReplyMessage)
            replies.append(reply)
        assert [r.command for r in replies] == [Command.ACK] * 12
        assert sorted(r.reply.seq for r in replies) == list(range(1, 13))
        assert len(Hub(store, data_dir, endpoint, loop).event_ids("dev1")) == 12
    finally:
        held.gate.set()
        stop.set()
        client.close()
        time.sleep(0.3)
        store.close()


def test_several_processes_need_a_tcp_host_port_endpoint(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="bind: several ingest processes share a TCP port"):
        IngestConfig(bind="ipc:///tmp/cityeye-ingest", data_dir=tmp_path, processes=2)
    assert IngestConfig(bind="ipc:///tmp/cityeye-ingest", data_dir=tmp_path).processes == 1  # one: any endpoint
    with pytest.raises(ValidationError, match="zmq_bind: several ingest processes share a TCP port"):
        HubSettings(data_dir=tmp_path, zmq_bind="ipc:///tmp/cityeye-ingest", ingest_processes=2)
    assert tcp_host_port("tcp://*:7755") == ("0.0.0.0", 7755)
    assert tcp_host_port("tcp://[::1]:*") == ("::1", 0)
    assert tcp_host_port("tcp://hub.example:0") == ("hub.example", 0)
    with pytest.raises(ValueError, match="out of range"):
        tcp_host_port("tcp://127.0.0.1:70000")


def test_worker_processes_share_a_free_port_that_the_hub_keeps(tmp_path: Path) -> None:
    """Port "*": the hub reserves one, both workers listen on it, agents reach them, and neither another
    program nor another hub can take the port."""
    import errno
    import socket

    data_dir = tmp_path / "hub"
    store = Store.open(None, data_dir)
    stop = threading.Event()
    config = IngestConfig(bind="tcp://127.0.0.1:*", data_dir=data_dir, processes=2)
    pool = run_ingest_processes(config, HubSettings(data_dir=data_dir), stop)
    clients: list[Client] = []
    try:
        host, port = tcp_host_port(pool.endpoint)
        assert host == "127.0.0.1" and port > 0
        with socket.socket() as intruder, pytest.raises(OSError) as refused:
            intruder.bind((host, port))
        assert refused.value.errno == errno.EADDRINUSE
        with pytest.raises(RuntimeError, match="the port is in use"):  # a second hub on the same port
            shared_port_socket(pool.endpoint, listen=False)
        clients = [Client(enroll_device(store, data_dir, f"dev{i}", pool.endpoint), pool.endpoint) for i in range(6)]
        for c in clients:
            reply = c.request(c.sealed(1), timeout=10)
            assert reply is not None and reply.command is Command.ACK
        assert eventually(lambda: pool.stats.acked == 6)
    finally:
        for c in clients:
            c.close()
        stop.set()
        for proc in pool.procs.values():
            proc.join(10)
        store.close()


def test_hub_serve_with_two_ingest_processes_survives_kill_9_and_leaves_no_worker_behind(tmp_path: Path) -> None:
    """`cityeye hub serve --ingest-processes 2` as a user runs it: agents are ACKed through the workers; after
    kill -9 of the hub a new one takes the same port at once (the orphaned workers step aside) and the agents
    go on; Ctrl-C (SIGINT) stops the workers with the hub."""
    import signal
    import subprocess
    import sys
    import urllib.request

    data_dir, zmq_port, api_port = tmp_path / "hub", free_port(), free_port()
    endpoint = f"tcp://127.0.0.1:{zmq_port}"
    log = tmp_path / "serve.log"

    def serve() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "cityeye", "hub", "serve", "--data", str(data_dir),
                                     "--zmq", endpoint, "--api", f"127.0.0.1:{api_port}", "--ingest-processes", "2"],
                                    stdout=out, stderr=subprocess.STDOUT)

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        assert eventually(healthy, 90), log.read_text()
        return proc

    def children(proc: subprocess.Popen[bytes]) -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "multiprocessing"], capture_output=True, text=True)
        return [int(p) for p in found.stdout.split()]

    def all_acked(n: int) -> None:
        for c in clients:
            reply = c.request(c.sealed(n), timeout=30)
            assert reply is not None and reply.command is Command.ACK, log.read_text()

    first = serve()
    workers = children(first)
    assert len(workers) >= 2, f"expected the two ingest workers among {workers}"
    store = Store.open(None, data_dir)
    try:
        clients = [Client(enroll_device(store, data_dir, f"dev{i}", endpoint), endpoint) for i in range(4)]
    finally:
        store.close()
    try:
        all_acked(1)
        first.kill()
        first.wait(10)
        second = serve()
        workers += children(second)
        try:
            all_acked(2)  # the same sockets: they reconnect to the new hub by themselves
        finally:
            second.send_signal(signal.SIGINT)
            second.wait(30)
    finally:
        for c in clients:
            c.close()
    for pid in workers:
        assert eventually(functools.partial(_gone, pid), 10), f"ingest worker {pid} outlived its hub"


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has stopped
    except FileNotFoundError:
        return True


def test_port_reservation_waits_for_a_killed_hubs_workers_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from hub.ingest import processes as ingest_processes

    monkeypatch.setattr(ingest_processes, "_ORPHANS_STOP_S", 1.0)
    with socket.socket() as squatter:  # stands for an orphaned worker still listening
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        endpoint = f"tcp://127.0.0.1:{squatter.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ingest_processes.PortInUse, match="the port is in use"):
            ingest_processes._reserve(endpoint)
        assert time.monotonic() - started >= 1.0
        threading.Timer(0.4, squatter.close).start()  # the orphan exits
        ingest_processes._reserve(endpoint).close()


_HUB_PROCESS = """
import sys, threading
from pathlib import Path
from hub.ingest.config import IngestConfig
from hub.ingest.loop import run_ingest
from hub.storage.store import Store
store = Store.open(None, Path(sys.argv[1]))
stop = threading.Event()
run_ingest(IngestConfig(bind=sys.argv[2], data_dir=Path(sys.argv[1])), store, stop)
print("ready", flush=True)
sys.stdin.read()  # until the test closes it
stop.set()
"""


def test_more_agents_than_the_default_open_file_limit_are_all_served(tmp_path: Path) -> None:
    """A hub started with a soft limit of 128 open files (1,024 is common; a district has 1,800 cameras)
    raises it for itself and serves 200 agents; before, it could not open evidence files past ~100."""
    import resource
    import subprocess
    import sys

    n, data_dir = 200, tmp_path / "hub"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    store = Store.open(None, data_dir)
    bundles = [enroll_device(store, data_dir, f"dev{i}", endpoint) for i in range(n)]
    store.close()

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 2 * n + 200:
        pytest.skip("the hard open-file limit of this machine is too low to show the raise")
    hub = subprocess.Popen([sys.executable, "-c", _HUB_PROCESS, str(data_dir), endpoint], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, preexec_fn=low_limit)
    ctx = zmq.Context()
    try:
        assert hub.stdout is not None and hub.stdout.readline().strip() == b"ready"
        socks = []
        for b in bundles:
            sock = ctx.socket(zmq.DEALER)
            sock.linger = 0
            sock.curve_secretkey, sock.curve_publickey = b.curve_secret.encode(), b.curve_public.encode()
            sock.curve_serverkey = b.hub_curve_public.encode()
            sock.connect(endpoint)
            event, media = make_event(b.device_id, 1, JPEG)
            sock.send_multipart(seal_event(event, media, Signer(b.sign_secret), seq=1,
                                           prev_manifest_sha256=GENESIS_HASH).frames)
            socks.append(sock)
        poller = zmq.Poller()
        for sock in socks:
            poller.register(sock, zmq.POLLIN)
        acked, deadline = 0, time.monotonic() + 30
        while acked < n and (left := deadline - time.monotonic()) > 0:
            for sock, _ in poller.poll(left * 1000):
                reply = decode(sock.recv_multipart())
                poller.unregister(sock)
                acked += isinstance(reply, ReplyMessage) and reply.command is Command.ACK
        assert acked == n
    finally:
        ctx.destroy(linger=0)
        if hub.stdin is not None:
            hub.stdin.close()
        hub.wait(10)


def test_event_json_is_stored_exactly_as_the_device_signed_it(hub: Hub, client: Client) -> None:
    """The manifest signs the SHA-256 of the metadata frame: the hub keeps those bytes, not its own
    re-serialisation, so the evidence package of the case still verifies (here the agent's JSON is
    indented and its keys reversed: valid, but nothing the hub's serialiser would write)."""
    from sqlalchemy import Text, cast

    from hub.evidence.package import build_package
    from protocol.codec import encode_event
    from protocol.manifest import build_manifest
    from protocol.package import verify_package

    event, media = make_event("dev1", 1, JPEG)
    metadata = json.dumps(dict(reversed(list(json.loads(event.model_dump_json()).items()))), indent=2).encode()
    manifest = build_manifest(event, metadata, media, seq=1, prev_manifest_sha256=GENESIS_HASH).to_bytes()
    frames = encode_event(event, metadata, [media[r.name] for r in event.media], manifest,
                          Signer(client.bundle.sign_secret).sign(manifest), seq=1)
    reply = client.request(frames)
    assert reply is not None and reply.command is Command.ACK
    with hub.store.engine.connect() as conn:
        stored = conn.execute(select(cast(schema.events.c.payload, Text))).scalar_one()
    assert stored.encode() == metadata
    report = verify_package(build_package(hub.store, reply.reply.case_id))
    assert report.ok, report
