"""The on-disk outbox: durable, ordered, chained, quota with logged eviction, dead letters."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from edge_agent.spool import Spool, SpoolFull, unpack_frames
from protocol.codec import EventMessage, decode
from protocol.manifest import GENESIS_HASH, Signer, generate_signing_key, sha256_hex
from protocol.messages import ProblemState
from tests.delivery_support import make_event, small_jpeg

SECRET, PUBLIC = generate_signing_key()
JPEG = small_jpeg()


def spool(root: Path, quota: int = 10**9) -> Spool:
    return Spool(root, "dev1", Signer(SECRET), quota_bytes=quota)


def put(s: Spool, n: int, state: ProblemState = ProblemState.OPENED) -> None:
    event, media = make_event("dev1", n, JPEG, state=state)
    s.put(event, media)


def manifest_of(s: Spool, seq: int) -> EventMessage:
    entry = s.get(seq)
    assert entry is not None
    msg = decode(s.read_frames(entry))
    assert isinstance(msg, EventMessage)
    return msg


def test_seq_and_hash_chain_survive_restart(tmp_path: Path) -> None:
    s = spool(tmp_path)
    for n in range(3):
        put(s, n)
    assert [e.seq for e in s.pending()] == [1, 2, 3]
    first, second = manifest_of(s, 1), manifest_of(s, 2)
    assert first.manifest.prev_manifest_sha256 == GENESIS_HASH
    assert second.manifest.prev_manifest_sha256 == sha256_hex(first.manifest_bytes)
    s.ack(1)
    s.ack(2)
    s.ack(3)
    again = spool(tmp_path)
    put(again, 3)
    assert [e.seq for e in again.pending()] == [4]


def manifest_of_path(root: Path, seq: int) -> bytes:
    path = next((root / "outbox").glob(f"{seq:012d}.*.evt"))
    return unpack_frames(path.read_bytes())[-2]


def test_restart_after_crash_between_renames_recovers_chain(tmp_path: Path) -> None:
    s = spool(tmp_path)
    put(s, 0)
    put(s, 1)
    # A crash after the event rename but before the state rename: state still says seq 1.
    state_path = tmp_path / "outbox" / "_state.json"
    state = json.loads(state_path.read_text())
    state.update(seq=1, prev_manifest_sha256=GENESIS_HASH)
    state_path.write_text(json.dumps(state))
    (tmp_path / "outbox" / ".tmp-000000000003.opened.x.evt").write_bytes(b"half")
    again = spool(tmp_path)
    put(again, 2)
    assert [e.seq for e in again.pending()] == [1, 2, 3]
    assert manifest_of(again, 3).manifest.prev_manifest_sha256 == sha256_hex(manifest_of_path(tmp_path, 2))
    assert not list((tmp_path / "outbox").glob(".tmp-*"))


def test_ack_deletes_and_nack_dead_letters_with_reason(tmp_path: Path) -> None:
    s = spool(tmp_path)
    put(s, 0)
    put(s, 1)
    assert s.ack(1) and not s.ack(1)
    assert s.dead_letter(2, "frame 4: JPEG does not decode")
    assert s.pending() == []
    [dead] = s.dead_letters()
    assert dead.entry.seq == 2 and "JPEG" in dead.reason
    assert s.stats().dead_letters == 1 and s.stats().events == 0


def test_quota_evicts_oldest_updated_first_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    probe = spool(tmp_path / "probe")
    put(probe, 0)
    size = probe.pending()[0].size
    s = spool(tmp_path / "s", quota=size * 3 + size // 2)
    put(s, 0, ProblemState.OPENED)
    put(s, 1, ProblemState.UPDATED)
    put(s, 2, ProblemState.UPDATED)
    with caplog.at_level(logging.WARNING):
        put(s, 3, ProblemState.OPENED)
    assert [(e.seq, e.state) for e in s.pending()] == [(1, "opened"), (3, "updated"), (4, "opened")]
    assert "EVICTED updated event ev-dev1-000001" in caplog.text
    lines = (tmp_path / "s" / "evictions.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["event_id"] == "ev-dev1-000001"
    assert s.stats().evicted == 1


def test_quota_refuses_when_only_opened_left(tmp_path: Path) -> None:
    probe = spool(tmp_path / "probe")
    put(probe, 0)
    size = probe.pending()[0].size
    s = spool(tmp_path / "s", quota=size * 2 + size // 2)
    put(s, 0)
    put(s, 1)
    with pytest.raises(SpoolFull, match="not stored"):
        put(s, 2, ProblemState.UPDATED)
    assert [e.seq for e in s.pending()] == [1, 2]
    assert s.stats().refused == 1
    s.ack(1)
    put(s, 4)  # room again once the hub ACKs
    assert len(s.pending()) == 2


def test_spool_of_another_device_is_refused(tmp_path: Path) -> None:
    spool(tmp_path)
    put(spool(tmp_path), 0)
    with pytest.raises(ValueError, match="belongs to dev1"):
        Spool(tmp_path, "dev2", Signer(SECRET))
