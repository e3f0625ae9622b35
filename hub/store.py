"""The hub's store: events, evidence, devices and cameras, and the dedup of events into cases.

One object for the ingest path and the API: `Store.open(db_url, data_dir)` runs migrations, then every
write is one short transaction that commits before the method returns. Evidence bytes go to disk
(content-addressed) before the transaction, so a committed event never points at a missing file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from hub import cases as dedup
from hub import db
from hub.evidence import EvidenceError, EvidenceStore
from hub.lifecycle import CaseStatus, Deadlines
from protocol.messages import Heartbeat, MediaRef, ProblemEvent, ProblemState

log = logging.getLogger(__name__)
T = TypeVar("T")


_MEDIA_INSERT = db.media.insert()
_CHANGE_INSERT = db.case_changes.insert()
_EVENT_CASE = db.events.update().where(db.events.c.id == bindparam("b_id")).values(case_id=bindparam("b_case"))


class StoreError(ValueError):
    """Input the store refuses; the message names what is wrong."""


class UnknownDevice(StoreError):
    pass


@dataclass(frozen=True)
class IngestResult:
    duplicate: bool  # the (device_id, event_id) was already stored; nothing changed
    case_id: str | None  # the case the event belongs to (None: a `cleared` with no case)
    created: bool = False  # this event opened the case


@dataclass(frozen=True)
class Device:
    device_id: str
    curve_public_key: str
    sign_public_key: str
    revoked: bool
    enrolled_at: datetime
    last_seen: datetime | None
    agent_version: str | None = None
    health: dict[str, Any] | None = None


@dataclass(frozen=True)
class EventRecord:
    device_id: str
    event_id: str
    seq: int
    case_id: str | None
    received_at: datetime
    event: ProblemEvent
    manifest: bytes
    signature: bytes
    media: list[MediaRef]


@dataclass
class StoreCounters:
    """In-process counts for /metrics."""

    events: int = 0
    duplicates: int = 0
    cases_created: int = 0


class Store:
    def __init__(
        self,
        engine: Engine,
        data_dir: Path,
        *,
        deadlines: Deadlines | None = None,
        policy: Callable[[str], dedup.DedupPolicy] = dedup.default_policy,
        evidence_fsync: bool = True,
    ) -> None:
        self.engine = engine
        self.data_dir = data_dir
        self.evidence = EvidenceStore(data_dir / "evidence", fsync=evidence_fsync)
        self.deadlines = deadlines
        self.policy = policy
        self.counters = StoreCounters()
        self._event_stmt: Any = None
        self.on_change: list[Callable[[str, str], None]] = []  # (case_id, kind) after commit

    @classmethod
    def open(cls, db_url: str | None, data_dir: Path, *, migrate: bool = True, **kwargs: Any) -> Store:
        """Open (and migrate) the store; SQLite at data_dir/hub.db when `db_url` is None."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        engine = db.make_engine(db_url or db.sqlite_url(data_dir))
        if migrate:
            db.migrate(engine)
        return cls(engine, data_dir, **kwargs)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def is_postgres(self) -> bool:
        return db.is_postgres(self.engine)

    # ---- transactions ----------------------------------------------------------------------------

    def write(self, fn: Callable[[Connection], T], attempts: int = 5) -> T:
        """Run `fn` in one transaction, retrying PostgreSQL deadlocks and serialisation failures."""
        for attempt in range(attempts):
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except DBAPIError as exc:
                code = getattr(exc.orig, "sqlstate", None)
                if code not in ("40001", "40P01") or attempt == attempts - 1:
                    raise
                log.info("retrying transaction after %s (attempt %d)", code, attempt + 1)
                time.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    def _insert(self, conn: Connection, table: Any) -> Any:
        return (pg_insert if db.is_postgres(conn) else sqlite_insert)(table)

    def _event_insert(self, conn: Connection) -> Any:
        """INSERT ... ON CONFLICT (device_id, event_id) DO NOTHING RETURNING id, built once per store."""
        if self._event_stmt is None:
            stmt = self._insert(conn, db.events).on_conflict_do_nothing(index_elements=["device_id", "event_id"])
            self._event_stmt = stmt.returning(db.events.c.id)
        return self._event_stmt

    # ---- ingest ----------------------------------------------------------------------------------

    def ingest_event(
        self, event: ProblemEvent, media: Mapping[str, bytes], *, manifest: bytes, signature: bytes, seq: int
    ) -> IngestResult:
        """Store an edge event idempotently on (device_id, event_id) and dedup it into a case."""
        self._store_media(event, media)
        obs = dedup.Observation(
            class_id=event.class_id,
            state=event.state,
            observed_at=event.observed_at,
            first_seen=event.first_seen,
            source="edge",
            camera_id=event.camera_id,
            zone=event.zone,
            box=event.box,
            ground=event.ground,
            problem_key=(event.device_id, event.camera_id, event.problem_id),
        )
        row = {
            "device_id": event.device_id,
            "event_id": event.event_id,
            "seq": seq,
            "problem_id": event.problem_id,
            "camera_id": event.camera_id,
            "class_id": event.class_id,
            "state": event.state.value,
            "source": "edge",
            "observed_at": event.observed_at,
            "payload": event.model_dump(mode="json"),
            "manifest": bytes(manifest),
            "signature": bytes(signature),
        }
        return self.ingest_observation(obs, row, event.media)

    def ingest_observation(self, obs: dedup.Observation, row: dict[str, Any], refs: list[MediaRef]) -> IngestResult:
        """The shared intake path (edge, sensors, people): record the report, then dedup it."""
        result = self.write(lambda conn: self._ingest_tx(conn, obs, row, refs))
        self.counters.events += 1
        if result.duplicate:
            self.counters.duplicates += 1
        elif result.case_id:
            self.counters.cases_created += int(result.created)
            self._notify(result.case_id, "case.created" if result.created else "case.updated")
        return result

    def _store_media(self, event: ProblemEvent, media: Mapping[str, bytes]) -> None:
        declared = {m.name: m for m in event.media}
        if set(media) != set(declared):
            raise StoreError(
                f"media frames {sorted(media)} do not match the event's media list {sorted(declared)}"
            )
        for name, ref in declared.items():
            data = media[name]
            if len(data) != ref.size:
                raise StoreError(f"media {name!r}: {len(data)} bytes, but the event declares {ref.size}")
            try:
                self.evidence.put(bytes(data), expect_sha256=ref.sha256)
            except EvidenceError as exc:
                raise StoreError(f"media {name!r}: {exc}") from exc

    def _ingest_tx(
        self, conn: Connection, obs: dedup.Observation, row: dict[str, Any], refs: list[MediaRef]
    ) -> IngestResult:
        now = db.utcnow()
        e = db.events
        inserted = conn.execute(self._event_insert(conn), {**row, "received_at": now}).first()
        if inserted is None:
            existing = conn.execute(
                select(e.c.case_id).where(e.c.device_id == row["device_id"], e.c.event_id == row["event_id"])
            ).scalar_one_or_none()
            return IngestResult(duplicate=True, case_id=existing)
        event_pk = inserted[0]
        if refs:
            conn.execute(
                _MEDIA_INSERT,
                [
                    {"event_pk": event_pk, "name": m.name, "kind": m.kind.value, "content_type": m.content_type,
                     "size": m.size, "sha256": m.sha256}
                    for m in refs
                ],
            )
        case_id, created = self._dedup_tx(conn, obs, now, row["device_id"])
        if case_id is not None:
            conn.execute(_EVENT_CASE, {"b_id": event_pk, "b_case": case_id})
        return IngestResult(duplicate=False, case_id=case_id, created=created)

    def _dedup_tx(
        self, conn: Connection, obs: dedup.Observation, now: datetime, reporter: str
    ) -> tuple[str | None, bool]:
        policy = self.policy(obs.class_id)
        for key in dedup.lock_keys(obs, policy):
            db.advisory_lock(conn, key)
        case = dedup.find_live_case(conn, obs, policy)
        if obs.state == ProblemState.CLEARED:
            if case is None:
                return None, False
            dedup.attach(conn, case, obs, now)
            self._mark_cleared(conn, case, obs, now, reporter)
            return case.case_id, False
        if case is not None:
            dedup.attach(conn, case, obs, now)
            self._change(conn, case.case_id, "case.updated", case.status, now)
            return case.case_id, False
        previous = dedup.find_previous_case(conn, obs, policy)
        deadline = self._deadline(obs.class_id, CaseStatus.PENDING_REVIEW, now)
        case_id = dedup.insert_case(conn, obs, now, previous, deadline)
        conn.execute(
            db.transitions.insert().values(
                case_id=case_id, at=now, actor=reporter if ":" in reporter else f"{obs.source}:{reporter}",
                action="open", from_status=None,
                to_status=CaseStatus.PENDING_REVIEW.value,
                note=f"recurrence of {previous.case_id}" if previous else None,
            )
        )
        self._change(conn, case_id, "case.created", CaseStatus.PENDING_REVIEW, now)
        return case_id, True

    def _mark_cleared(self, conn: Connection, case: dedup.CaseRow, obs: dedup.Observation, now: datetime,
                      reporter: str) -> None:
        """The problem is gone from the place: a handled case is verified by the camera itself."""
        c = db.cases
        conn.execute(update(c).where(c.c.case_id == case.case_id).values(cleared_at=obs.observed_at))
        if case.status != CaseStatus.HANDLED:
            self._change(conn, case.case_id, "case.updated", case.status, now)
            return
        deadline = self._deadline(case.class_id, CaseStatus.VERIFIED, now)
        conn.execute(
            update(c).where(c.c.case_id == case.case_id)
            .values(status=CaseStatus.VERIFIED.value, deadline_at=deadline, updated_at=now)
        )
        conn.execute(
            db.transitions.insert().values(
                case_id=case.case_id, at=now, actor=f"edge:{reporter}", action="auto_verify",
                from_status=CaseStatus.HANDLED.value, to_status=CaseStatus.VERIFIED.value,
                note=f"problem cleared at the place (camera {obs.camera_id})",
            )
        )
        self._change(conn, case.case_id, "case.transition", CaseStatus.VERIFIED, now)

    def _deadline(self, class_id: str, status: CaseStatus, start: datetime) -> datetime | None:
        return self.deadlines.deadline(class_id, status, start) if self.deadlines else None

    def _change(self, conn: Connection, case_id: str, kind: str, status: str, now: datetime,
                data: dict[str, Any] | None = None) -> None:
        conn.execute(_CHANGE_INSERT, {"at": now, "case_id": case_id, "kind": kind, "status": str(status), "data": data})

    def _notify(self, case_id: str, kind: str) -> None:
        for callback in list(self.on_change):
            try:
                callback(case_id, kind)
            except Exception:  # a broken listener must not fail an ingest that already committed
                log.exception("case-change listener failed")

    # ---- devices and heartbeats --------------------------------------------------------------------

    def add_device(self, device_id: str, curve_public_key: str, sign_public_key: str, *,
                   replace: bool = False) -> None:
        """Enrol a device; an existing one is refused unless `replace` (re-enrolment with new keys)."""
        def tx(conn: Connection) -> None:
            d = db.devices
            exists = conn.execute(select(d.c.device_id).where(d.c.device_id == device_id)).first()
            values = {"curve_public_key": curve_public_key, "sign_public_key": sign_public_key,
                      "revoked": False, "revoked_at": None, "enrolled_at": db.utcnow()}
            if exists and not replace:
                raise StoreError(f"device {device_id!r} is already enrolled (revoke it or pass replace=True)")
            if exists:
                conn.execute(update(d).where(d.c.device_id == device_id).values(**values))
            else:
                conn.execute(d.insert().values(device_id=device_id, **values))

        self.write(tx)

    def revoke_device(self, device_id: str) -> None:
        def tx(conn: Connection) -> None:
            d = db.devices
            done = conn.execute(
                update(d).where(d.c.device_id == device_id).values(revoked=True, revoked_at=db.utcnow())
            )
            if done.rowcount == 0:
                raise UnknownDevice(f"no enrolled device {device_id!r}")

        self.write(tx)

    def get_device(self, device_id: str) -> Device | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(db.devices).where(db.devices.c.device_id == device_id)).first()
        return _device(row) if row else None

    def list_devices(self) -> list[Device]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.devices).order_by(db.devices.c.device_id)).all()
        return [_device(r) for r in rows]

    def record_heartbeat(self, hb: Heartbeat) -> None:
        """Device and per-camera health and online state (devices must be enrolled to be tracked)."""
        health = hb.model_dump(mode="json", exclude={"cameras", "v"})

        def tx(conn: Connection) -> None:
            now = db.utcnow()
            d = db.devices
            conn.execute(
                update(d).where(d.c.device_id == hb.device_id)
                .values(last_seen=now, agent_version=hb.agent_version, health=health)
            )
            for cam in hb.cameras:
                values = {"device_id": hb.device_id, "online": cam.online, "last_seen": now,
                          "health": cam.model_dump(mode="json")}
                stmt = self._insert(conn, db.cameras).values(camera_id=cam.camera_id, **values)
                conn.execute(stmt.on_conflict_do_update(index_elements=["camera_id"], set_=values))

        self.write(tx)

    # ---- events and evidence -----------------------------------------------------------------------

    def get_event(self, event_id: str, device_id: str | None = None) -> EventRecord | None:
        e = db.events
        query = select(e).where(e.c.event_id == event_id, e.c.source == "edge")
        if device_id is not None:
            query = query.where(e.c.device_id == device_id)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(e.c.id).limit(1)).first()
            if row is None:
                return None
            refs = conn.execute(select(db.media).where(db.media.c.event_pk == row.id).order_by(db.media.c.id)).all()
        m = row._mapping
        return EventRecord(
            device_id=m["device_id"], event_id=m["event_id"], seq=m["seq"], case_id=m["case_id"],
            received_at=m["received_at"], event=ProblemEvent.model_validate(m["payload"]),
            manifest=bytes(m["manifest"]), signature=bytes(m["signature"]),
            media=[MediaRef(name=r.name, kind=r.kind, content_type=r.content_type, size=r.size, sha256=r.sha256)
                   for r in refs],
        )

    def evidence_path(self, sha256: str) -> Path:
        return self.evidence.path(sha256)

    def evidence_bytes(self, sha256: str) -> bytes:
        return self.evidence.get(sha256)

    def online_cutoff(self, offline_after_s: float) -> datetime:
        return db.utcnow() - timedelta(seconds=offline_after_s)


def _device(row: Any) -> Device:
    m = row._mapping
    return Device(
        device_id=m["device_id"], curve_public_key=m["curve_public_key"], sign_public_key=m["sign_public_key"],
        revoked=bool(m["revoked"]), enrolled_at=m["enrolled_at"], last_seen=m["last_seen"],
        agent_version=m["agent_version"], health=m["health"],
    )
