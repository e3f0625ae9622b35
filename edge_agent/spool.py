"""Durable on-disk outbox for evidence: nothing is sent before it is on disk, nothing is deleted
before the hub has ACKed it.

Layout under `root`:

    outbox/_state.json             per-device seq and last manifest hash (the signing chain)
    outbox/<seq>.<state>.<event_id>.evt   one sealed event: its exact wire frames
    dead/<same name> + .reason.json       events the hub NACKed (permanently refused), with why
    evictions.jsonl                       every event the quota pushed out, one JSON line each

Each event is sealed (seq, manifest, signature) once, at `put`, and written as its wire frames,
so a resend after a crash is byte-identical and the hub's dedup sees the same event. Files are
written to a dot-temp name, fsynced, renamed, then the directory is fsynced: after kill -9 a file
is either whole or absent, and leftover temp files are removed at start.

Quota policy (explicit, logged, counted): when a new event doesn't fit, the oldest `updated`
events are evicted first (a later update of the same problem supersedes them); `opened` and
`cleared` events are never evicted. If that doesn't make room, the new event is refused with
SpoolFull so the caller knows it was not stored.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.codec import seal_event
from protocol.manifest import GENESIS_HASH, Signer, sha256_hex
from protocol.messages import ProblemEvent, ProblemState

log = logging.getLogger(__name__)

MAGIC = b"CEYESPL1"
_COUNT = struct.Struct("<I")
_LEN = struct.Struct("<Q")
STATE_FILE = "_state.json"
EVICTABLE = ProblemState.UPDATED


class SpoolFull(RuntimeError):
    """The event was NOT stored: the quota is reached and nothing may be evicted for it."""


class SpoolCorrupt(ValueError):
    """A spool file that can't be parsed (disk damage; never produced by a crash)."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    seq: int
    event_id: str
    state: ProblemState
    path: Path
    size: int

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True, slots=True)
class DeadLetter:
    entry: SpoolEntry
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class SpoolStats:
    events: int
    bytes: int
    dead_letters: int
    evicted: int  # since start; evictions.jsonl has the full history
    refused: int  # since start


def entry_name(seq: int, state: ProblemState, event_id: str) -> str:
    return f"{seq:012d}.{state.value}.{event_id}.evt"


def parse_entry(path: Path) -> SpoolEntry | None:
    parts = path.name.split(".")
    if len(parts) != 4 or parts[3] != "evt" or not parts[0].isdigit():
        return None
    try:
        state = ProblemState(parts[1])
    except ValueError:
        return None
    return SpoolEntry(seq=int(parts[0]), event_id=parts[2], state=state, path=path, size=path.stat().st_size)


def entries_in(folder: Path) -> list[SpoolEntry]:
    """The spool entries stored in `folder`, oldest first; files that are not entries are skipped."""
    return sorted((e for p in folder.glob("*.evt") if (e := parse_entry(p)) is not None), key=lambda e: e.seq)


def pack_frames(frames: list[bytes]) -> bytes:
    out = [MAGIC, _COUNT.pack(len(frames))]
    for frame in frames:
        out += [_LEN.pack(len(frame)), frame]
    return b"".join(out)


def unpack_frames(data: bytes) -> list[bytes]:
    if not data.startswith(MAGIC):
        raise SpoolCorrupt("bad magic")
    (count,), pos = _COUNT.unpack_from(data, len(MAGIC)), len(MAGIC) + _COUNT.size
    frames = []
    for _ in range(count):
        if pos + _LEN.size > len(data):
            raise SpoolCorrupt("truncated length")
        (size,), pos = _LEN.unpack_from(data, pos), pos + _LEN.size
        if pos + size > len(data):
            raise SpoolCorrupt("truncated frame")
        frames.append(data[pos:pos + size])
        pos += size
    if pos != len(data):
        raise SpoolCorrupt("trailing bytes")
    return frames


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Whole-or-nothing write: temp file, fsync, rename over `path`, fsync the directory."""
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)


class Spool:
    """The outbox of one device. Thread-safe: the pipeline puts, the sender acks."""

    def __init__(self, root: Path, device_id: str, signer: Signer, *, quota_bytes: int = 2 * 1024**3) -> None:
        self.root = root
        self.device_id = device_id
        self.quota_bytes = quota_bytes
        self._signer = signer
        self._outbox = root / "outbox"
        self._dead = root / "dead"
        self._lock = threading.Lock()  # the index (_entries) and the counters
        self._put_lock = threading.Lock()
        self._evicted = 0
        self._refused = 0
        for d in (self._outbox, self._dead):
            d.mkdir(parents=True, exist_ok=True)
        self._entries: dict[int, SpoolEntry] = {}
        self._seq, self._prev_hash = self._recover()

    # --- start-up ---

    def _recover(self) -> tuple[int, str]:
        for tmp in [*self._outbox.glob(".tmp-*"), *self._dead.glob(".tmp-*")]:
            log.info("removing half-written spool file %s left by a crash", tmp.name)
            tmp.unlink()
        for entry in entries_in(self._outbox):
            self._entries[entry.seq] = entry
        seq, prev = 0, GENESIS_HASH
        state_path = self._outbox / STATE_FILE
        if state_path.exists():
            state = json.loads(state_path.read_text())
            if state["device_id"] != self.device_id:
                raise ValueError(f"spool {self.root} belongs to {state['device_id']}, not {self.device_id}")
            seq, prev = int(state["seq"]), str(state["prev_manifest_sha256"])
        # The event file and the state are renamed together; after a crash the event may be newer.
        dead = {e.seq: e for e in entries_in(self._dead)}
        newest = max([*self._entries, *dead], default=0)
        if newest > seq:
            path = (self._entries.get(newest) or dead[newest]).path
            seq, prev = newest, sha256_hex(unpack_frames(path.read_bytes())[-2])
        return seq, prev

    # --- the pipeline side ---

    def put(self, event: ProblemEvent, media: dict[str, bytes] | None = None) -> SpoolEntry:
        """Seal and store one event durably; raise SpoolFull if the quota policy refuses it."""
        if event.device_id != self.device_id:
            raise ValueError(f"event is from device {event.device_id}, this spool is {self.device_id}")
        # _put_lock orders the chain (seq, previous hash) across submitters; the index lock is held
        # only briefly, so the sender isn't stalled behind our fsyncs.
        with self._put_lock:
            sealed = seal_event(event, media or {}, self._signer, seq=self._seq + 1,
                                prev_manifest_sha256=self._prev_hash)
            data = pack_frames(sealed.frames)
            with self._lock:
                self._make_room(len(data), event)
            path = self._outbox / entry_name(sealed.seq, event.state, event.event_id)
            state = {"device_id": self.device_id, "seq": sealed.seq,
                     "prev_manifest_sha256": sealed.manifest_sha256}
            write_durable(self._outbox / STATE_FILE, json.dumps(state).encode(), sync_dir=False)
            write_durable(path, data)
            self._seq, self._prev_hash = sealed.seq, sealed.manifest_sha256
            entry = SpoolEntry(sealed.seq, event.event_id, event.state, path, len(data))
            with self._lock:
                self._entries[entry.seq] = entry
            return entry

    def _make_room(self, size: int, event: ProblemEvent) -> None:
        used = sum(e.size for e in self._entries.values())
        if used + size <= self.quota_bytes:
            return
        victims = sorted((e for e in self._entries.values() if e.state is EVICTABLE), key=lambda e: e.seq)
        freed, chosen = 0, []
        for victim in victims:
            if used - freed + size <= self.quota_bytes:
                break
            chosen.append(victim)
            freed += victim.size
        if used - freed + size > self.quota_bytes:
            self._refused += 1
            log.error("spool full (%d of %d bytes): REFUSED %s event %s (%d bytes); only `updated` events "
                      "are evicted", used, self.quota_bytes, event.state.value, event.event_id, size)
            raise SpoolFull(f"spool quota {self.quota_bytes} bytes reached, {used} used; "
                            f"event {event.event_id} ({event.state.value}) not stored")
        for victim in chosen:
            self._evict(victim, f"quota: making room for {event.state.value} event {event.event_id}")

    def _evict(self, entry: SpoolEntry, reason: str) -> None:
        record = {"at": time.time(), "seq": entry.seq, "event_id": entry.event_id,
                  "state": entry.state.value, "bytes": entry.size, "reason": reason}
        with open(self.root / "evictions.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        entry.path.unlink(missing_ok=True)
        del self._entries[entry.seq]
        self._evicted += 1
        log.warning("spool EVICTED %s event %s (seq %d, %d bytes): %s", entry.state.value, entry.event_id,
                    entry.seq, entry.size, reason)

    # --- the sender side ---

    def pending(self, limit: int | None = None, exclude: set[int] | frozenset[int] = frozenset()
                ) -> list[SpoolEntry]:
        """Oldest first; `exclude` skips the seqs already in flight."""
        with self._lock:
            seqs = sorted(s for s in self._entries if s not in exclude)
            return [self._entries[s] for s in seqs[:limit]]

    def get(self, seq: int) -> SpoolEntry | None:
        with self._lock:
            return self._entries.get(seq)

    def read_frames(self, entry: SpoolEntry) -> list[bytes]:
        return unpack_frames(entry.path.read_bytes())

    def ack(self, seq: int) -> bool:
        """The hub committed this event: forget it. False if it was already gone (a duplicate ACK).

        No fsync: if the unlink is lost in a crash, the event is resent and the hub re-ACKs it."""
        with self._lock:
            entry = self._entries.pop(seq, None)
            if entry is None:
                return False
            entry.path.unlink(missing_ok=True)
            return True

    def dead_letter(self, seq: int, reason: str) -> bool:
        """The hub refused this event for good: keep it aside with the reason, never resend it."""
        with self._lock:
            entry = self._entries.pop(seq, None)
            if entry is None:
                return False
            target = self._dead / entry.name
            write_durable(self._dead / f"{entry.name}.reason.json",
                          json.dumps({"at": time.time(), "reason": reason}).encode(), sync_dir=False)
            os.replace(entry.path, target)
            fsync_dir(self._dead)
            fsync_dir(self._outbox)
        log.error("event %s (seq %d) dead-lettered: %s", entry.event_id, seq, reason)
        return True

    def dead_letters(self) -> list[DeadLetter]:
        return inspect_spool(self.root).dead

    def stats(self) -> SpoolStats:
        with self._lock:
            return SpoolStats(events=len(self._entries), bytes=sum(e.size for e in self._entries.values()),
                              dead_letters=len(list(self._dead.glob("*.evt"))), evicted=self._evicted,
                              refused=self._refused)


@dataclass(frozen=True)
class SpoolReport:
    """What an operator needs to see of a spool, read without its keys (`cityeye edge spool`)."""

    device_id: str | None
    pending: list[SpoolEntry]
    dead: list[DeadLetter]
    evictions: list[dict[str, object]]

    @property
    def pending_bytes(self) -> int:
        return sum(e.size for e in self.pending)


def inspect_spool(root: Path) -> SpoolReport:
    outbox, dead_dir = root / "outbox", root / "dead"
    state_path = outbox / STATE_FILE
    device_id = json.loads(state_path.read_text())["device_id"] if state_path.exists() else None
    pending = entries_in(outbox)
    dead = []
    for entry in entries_in(dead_dir):
        reason_path = entry.path.with_name(entry.name + ".reason.json")
        info: dict[str, Any] = json.loads(reason_path.read_text()) if reason_path.exists() else {"reason": "?", "at": 0}
        dead.append(DeadLetter(entry, info["reason"], info["at"]))
    log_path = root / "evictions.jsonl"
    evictions = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
    return SpoolReport(device_id, pending, dead, evictions)
