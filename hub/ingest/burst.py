"""Burst ingest: a burst of reports stored and deduplicated into cases in ONE transaction.

`ingest_events` takes a whole burst: its evidence files are made durable together, then every event is
inserted and deduplicated in ONE transaction (one commit, one lock statement), and each item gets its
own result or error. Single intakes (`ingest_event`, sensor and manual reports) are bursts of one, so
there is exactly one dedup code path (hub.cases.dedup.decide) and one lock order.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from hub.cases import dedup, plates
from hub.cases.transitions import AuditLog
from hub.evidence.files import EvidenceError, Staged
from hub.storage import db, schema
from hub.storage.core import StoreBase, StoreError
from protocol.messages import MediaRef, ProblemEvent

log = logging.getLogger(__name__)


# The ingest transaction's statements: driver SQL on tuples of driver values (db.Batch), built once.
# The case is decided before the insert, so each row carries its case_id (no UPDATE of the fresh rows after it).
_EVENT_COLUMNS = ("device_id", "event_id", "seq", "problem_id", "camera_id", "class_id", "state", "source",
                  "observed_at", "received_at", "payload", "manifest", "signature", "case_id")
_EVENT_CONFLICT = " ON CONFLICT (device_id, event_id) DO NOTHING RETURNING id, device_id, event_id"
_EVENT_INSERT = db.batch_insert(schema.events, _EVENT_COLUMNS, suffix=_EVENT_CONFLICT)
_EVENTS_PER_VALUES = 30000 // len(_EVENT_COLUMNS)  # SQLite takes up to 32766 parameters per statement
_MEDIA_INSERT = db.batch_insert(schema.media, ("event_pk", "name", "kind", "content_type", "size", "sha256"))


@functools.lru_cache(maxsize=64)
def _event_values_sql(rows: int) -> str:
    """SQLite: the events INSERT for `rows` rows in one VALUES list, since executemany drops RETURNING."""
    return db.insert_values(schema.events, _EVENT_COLUMNS, rows) + _EVENT_CONFLICT


# The events already stored among a burst's (device_id, event_id) keys, with their case.
_STORED_EVENTS = ("SELECT events.device_id, events.event_id, events.case_id FROM {keys} "
                  "JOIN events ON events.device_id = k.d AND events.event_id = k.e")
_STORED_EVENTS_PG = _STORED_EVENTS.format(keys="unnest(CAST(%s AS text[]), CAST(%s AS text[])) AS k(d, e)")
_KEYS_PER_VALUES = 30000 // 2


@functools.lru_cache(maxsize=64)
def _stored_events_sql(rows: int) -> str:
    return "WITH k(d, e) AS (VALUES " + ", ".join(["(?, ?)"] * rows) + ") " + _STORED_EVENTS.format(keys="k")


def _stored_events(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    """The events among `keys` that are already stored: (device, event) -> case_id."""
    if not keys:
        return {}
    if db.is_postgres(conn):
        result = conn.exec_driver_sql(_STORED_EVENTS_PG, ([d for d, _ in keys], [e for _, e in keys]))
        return {(d, e): case_id for d, e, case_id in result}
    stored = {}
    for k in range(0, len(keys), _KEYS_PER_VALUES):
        chunk = keys[k:k + _KEYS_PER_VALUES]
        params = tuple(v for key in chunk for v in key)
        stored.update({(d, e): case_id for d, e, case_id in conn.exec_driver_sql(_stored_events_sql(len(chunk)),
                                                                                 params)})
    return stored


def _insert_events(conn: Connection, rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], int]:
    """Insert the events rows that are new (ON CONFLICT DO NOTHING); their (device, event) -> id."""
    if db.is_postgres(conn):
        result = _EVENT_INSERT.run(conn, rows)
        return {(d, e): pk for pk, d, e in result} if result is not None else {}
    inserted = {}
    for k in range(0, len(rows), _EVENTS_PER_VALUES):
        chunk = rows[k:k + _EVENTS_PER_VALUES]
        params = tuple(v for row in chunk for v in row)
        inserted.update({(d, e): pk for pk, d, e in conn.exec_driver_sql(_event_values_sql(len(chunk)), params)})
    return inserted


@dataclass(frozen=True)
class IngestResult:
    duplicate: bool  # the (device_id, event_id) was already stored; nothing changed
    case_id: str | None  # the case the event belongs to (None: a `cleared` with no case)
    created: bool = False  # this event opened the case


@dataclass(frozen=True)
class IngestItem:
    """One edge event for `Store.ingest_events`: the event, its media bytes by name, and its proof."""

    event: ProblemEvent
    media: Mapping[str, bytes | memoryview]
    manifest: bytes
    signature: bytes
    seq: int
    # The SHA-256 of each media's bytes, already computed by the caller (ingest checked them against
    # the signed manifest), so the store does not hash them again; None: the store hashes them.
    media_sha256: Mapping[str, str] | None = None
    # The media already written by `Store.stage_media` (in event.media order), e.g. by ingest's check
    # threads in parallel; None: `ingest_events` writes them. Either way they are synced before the commit.
    staged: Sequence[Staged | EvidenceError | OSError] | None = None
    # The event's JSON exactly as the device sent and signed it (the manifest holds its SHA-256), kept
    # verbatim so evidence verifies later whatever serialiser the hub runs; None: `event` re-serialised.
    metadata: bytes | None = None


@dataclass(frozen=True)
class _Intake:
    """A report ready for the transaction: the dedup observation, the events row, its media refs."""

    obs: dedup.Observation
    row: dict[str, Any]
    refs: list[MediaRef]

    @property
    def key(self) -> tuple[str, str]:
        return self.row["device_id"], self.row["event_id"]


class _Raced(Exception):
    """Roll the batch back and run it again: an event checked as new was stored by a concurrent writer
    before this transaction's insert (PostgreSQL), so its dedup must not count."""


class _Withdraw(Exception):
    """Roll the batch back: these items' evidence is not durable (index -> error)."""

    def __init__(self, failed: dict[int, Exception]) -> None:
        super().__init__(f"evidence not durable for {len(failed)} item(s)")
        self.failed = failed


class BurstIngest(StoreBase):
    """The store's ingest: reports (edge events, sensor alerts, people's reports) stored and deduplicated
    into cases (a part of hub.storage.store.Store)."""

    def ingest_event(
        self, event: ProblemEvent, media: Mapping[str, bytes], *, manifest: bytes, signature: bytes, seq: int
    ) -> IngestResult:
        """Store an edge event idempotently on (device_id, event_id) and dedup it into a case."""
        result = self.ingest_events([IngestItem(event, media, manifest, signature, seq)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def ingest_events(self, items: Sequence[IngestItem]) -> list[IngestResult | Exception]:
        """Store a burst of edge events: per item its IngestResult, or the exception that refused it.

        Media are checked against each event's list (names, sizes, SHA-256) and written durably first;
        then all good items go through one transaction. A bad item (StoreError) never fails the others;
        if the shared transaction itself fails, the items are retried one transaction each, so only the
        item that can't be stored gets the error. Nothing is committed for an item that has an error."""
        prepared: list[_Intake | Exception] = []
        blobs: list[tuple[bytes | memoryview, str | None]] = []
        digests: list[str | None] = []
        owners: list[tuple[int, str]] = []
        done: list[Staged | EvidenceError | OSError | None] = []  # per blob, staged by the caller or below
        for i, item in enumerate(items):
            try:
                refs = _checked_media(item.event, item.media)
            except StoreError as exc:
                prepared.append(exc)
                continue
            prepared.append(_edge_intake(item))
            ready = item.staged if item.staged is not None and len(item.staged) == len(refs) else None
            for k, ref in enumerate(refs):
                blobs.append((item.media[ref.name], ref.sha256))
                digests.append(item.media_sha256.get(ref.name) if item.media_sha256 is not None else None)
                owners.append((i, ref.name))
                done.append(ready[k] if ready is not None else None)
        todo = [j for j, d in enumerate(done) if d is None]  # hashes checked, files written (not synced)
        for j, result in zip(todo, self.evidence.stage([blobs[j] for j in todo], digests=[digests[j] for j in todo]),
                             strict=True):
            done[j] = result
        staged = [d for d in done if d is not None]
        for (i, name), blob in zip(owners, staged, strict=True):
            if isinstance(blob, EvidenceError) and not isinstance(prepared[i], Exception):
                prepared[i] = StoreError(f"media {name!r}: {blob}")
        # The files are synced while the transaction runs; it commits only once they are durable.
        durable = self.evidence.submit(self.evidence.finish, staged)

        def evidence_failures() -> dict[int, Exception]:
            failed: dict[int, Exception] = {}
            for (i, _), stored in zip(owners, durable.result(), strict=True):
                if isinstance(stored, Exception):
                    failed.setdefault(i, stored)  # an OSError: transient, the agent resends
            return failed

        try:
            return self._ingest_intakes(prepared, before_commit=evidence_failures)
        finally:
            durable.result()  # never leave a sync running behind the caller's back

    def stage_media(self, item: IngestItem) -> list[Staged | EvidenceError | OSError]:
        """Write an item's media files (not yet synced) for a later `ingest_events`; thread-safe, so
        callers can stage many items in parallel. In event.media order."""
        refs = item.event.media
        known = item.media_sha256 or {}
        return self.evidence.stage([(item.media[r.name], r.sha256) for r in refs if r.name in item.media],
                                   digests=[known.get(r.name) for r in refs if r.name in item.media])

    def ingest_observation(self, obs: dedup.Observation, row: dict[str, Any], refs: list[MediaRef]) -> IngestResult:
        """The shared intake path (edge, sensors, people): record the report, then dedup it."""
        result = self._ingest_intakes([_Intake(obs, row, refs)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def _ingest_intakes(self, prepared: Sequence[_Intake | Exception], *,
                        before_commit: Callable[[], dict[int, Exception]] | None = None, raced: int = 0,
                        ) -> list[IngestResult | Exception]:
        """One transaction for all intakes; `before_commit` (inside it, last) names the items whose
        evidence did not become durable: they are withdrawn and the others run again without them."""
        results: list[IngestResult | Exception] = list(prepared)  # errors stay where they are
        todo = [(i, p) for i, p in enumerate(prepared) if isinstance(p, _Intake)]
        if not todo:
            return results

        def tx(conn: Connection) -> list[IngestResult]:
            done = self._ingest_tx(conn, [p for _, p in todo])
            failed = before_commit() if before_commit is not None else {}
            if any(i in failed for i, _ in todo):
                raise _Withdraw(failed)
            return done

        try:
            # With another process writing, first let the evidence become durable: the transaction
            # would wait for it at its end anyway, and the other writers would wait with it.
            done: list[IngestResult | Exception] = list(self.write(tx, before_waiting=before_commit))
        except _Withdraw as w:
            retry: list[_Intake | Exception] = [w.failed.get(i, p) for i, p in enumerate(results)]
            return self._ingest_intakes(retry)  # type: ignore[arg-type]
        except Exception as exc:
            if isinstance(exc, _Raced) and raced < 3:  # the other writer has committed: the check sees it now
                return self._ingest_intakes(prepared, before_commit=before_commit, raced=raced + 1)
            if len(todo) == 1:
                done = [exc]
            else:  # find the culprit: one transaction per item
                log.warning("batch of %d failed (%s); retrying item by item", len(todo), exc)
                # Each of those commits on its own: first wait until the evidence is durable, and
                # never commit an item whose files did not make it (the agent resends it).
                failed = before_commit() if before_commit is not None else {}
                for i, p in todo:
                    results[i] = failed[i] if i in failed else self._ingest_intakes([p])[0]
                return results
        for (i, _), r in zip(todo, done, strict=True):
            results[i] = r
            if isinstance(r, Exception):
                continue
            self.counters.events += 1
            if r.duplicate:
                self.counters.duplicates += 1
            elif r.case_id:
                self.counters.cases_created += int(r.created)
                self.notify(r.case_id, "case.created" if r.created else "case.updated")
        return results

    def _ingest_tx(self, conn: Connection, intakes: Sequence[_Intake]) -> list[IngestResult]:
        """Dedup the new reports, in order, under their locks, then insert them (each with its case) and
        their media. Idempotent: a report already stored changes nothing."""
        now = db.utcnow()
        t = db.bind_time(conn)
        at = t(now)
        first: dict[tuple[str, str], int] = {}
        for i, intake in enumerate(intakes):
            first.setdefault(intake.key, i)
        values = {i: _event_values(intakes[i].row, t, at) for i in first.values()}
        if db.is_postgres(conn):  # SQLite has one writer and takes no locks: no keys to work out
            # Before anything is read: a concurrent writer of the same report holds the same keys, so once
            # they are ours it has committed and the check below sees its row.
            db.advisory_locks(conn, {k for i in first.values()
                                     for k in dedup.lock_keys(intakes[i].obs, self.policy(intakes[i].obs.class_id))})
        existing = _stored_events(conn, list(first))
        fresh = [i for key, i in first.items() if key not in existing]
        burst = dedup.start_burst(conn, [intakes[i].obs for i in fresh], now)
        audit = AuditLog()
        decided: dict[int, tuple[str | None, bool]] = {}
        for i in fresh:
            intake = intakes[i]
            case, created = dedup.decide(conn, intake.obs, now, intake.row["device_id"], burst, audit,
                                          policy=self.policy(intake.obs.class_id), deadline=self.deadline)
            if case is not None:
                burst.assign(intake.obs, case)
            decided[i] = (case.case_id if case else None, created)
        dedup.flush(conn, burst)
        # Rows in (device, event) order: concurrent workers meet on the unique index in one order.
        rows = sorted((values[i] + (decided[i][0],) for i in fresh), key=lambda r: (r[0], r[1]))
        inserted = _insert_events(conn, rows)
        if len(inserted) != len(rows):
            raise _Raced(f"{len(rows) - len(inserted)} event(s) stored concurrently")
        media_rows = [(inserted[intakes[i].key], m.name, m.kind.value, m.content_type, m.size, m.sha256)
                      for i in fresh for m in intakes[i].refs]
        _MEDIA_INSERT.run(conn, media_rows)
        audit.write(conn, at)
        results = []
        for i, intake in enumerate(intakes):
            if i in decided:
                case_id, created = decided[i]
                results.append(IngestResult(duplicate=False, case_id=case_id, created=created))
            elif intake.key in inserted:  # the same event twice in one burst: the second is a duplicate
                results.append(IngestResult(duplicate=True, case_id=decided[first[intake.key]][0]))
            else:
                results.append(IngestResult(duplicate=True, case_id=existing.get(intake.key)))
        return results


def _event_values(row: Mapping[str, Any], t: Callable[[datetime], Any], received_at: Any) -> tuple[Any, ...]:
    """An events row (a report's dict) as the driver values of _EVENT_COLUMNS but the last, case_id."""
    return (row["device_id"], row["event_id"], row["seq"], row["problem_id"], row["camera_id"], row["class_id"],
            row["state"], row["source"], t(row["observed_at"]), received_at, db.bind_json(row["payload"]),
            row["manifest"], row["signature"])


def _checked_media(event: ProblemEvent, media: Mapping[str, bytes | memoryview]) -> list[MediaRef]:
    """The event's media refs, once the given bytes match them by name and size (hashes: on write)."""
    declared = {m.name: m for m in event.media}
    if set(media) != set(declared):
        raise StoreError(f"media frames {sorted(media)} do not match the event's media list {sorted(declared)}")
    for name, ref in declared.items():
        if len(media[name]) != ref.size:
            raise StoreError(f"media {name!r}: {len(media[name])} bytes, but the event declares {ref.size}")
    return list(event.media)


def _plate_fields(event: ProblemEvent) -> dict[str, Any]:
    """The Observation's plate fields: the plate the edge read (v2 events of parking classes)."""
    p = event.plate
    if p is None or p.text is None:
        return {}
    return {"plate": plates.stored(p.text), "plate_colour": p.colour.value if p.colour else None,
            "plate_score": p.score}


def _edge_intake(item: IngestItem) -> _Intake:
    event = item.event
    obs = dedup.Observation(
        class_id=event.class_id, state=event.state, observed_at=event.observed_at, first_seen=event.first_seen,
        source="edge", camera_id=event.camera_id, zone=event.zone, box=event.box, ground=event.ground,
        problem_key=(event.device_id, event.camera_id, event.problem_id),
        **_plate_fields(event),
    )
    row = {
        "device_id": event.device_id, "event_id": event.event_id, "seq": item.seq, "problem_id": event.problem_id,
        "camera_id": event.camera_id, "class_id": event.class_id, "state": event.state.value, "source": "edge",
        "observed_at": event.observed_at,
        "payload": db.JSONText(event.model_dump_json() if item.metadata is None else item.metadata.decode()),
        "manifest": bytes(item.manifest), "signature": bytes(item.signature),
    }
    return _Intake(obs, row, list(event.media))
