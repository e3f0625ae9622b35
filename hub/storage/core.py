"""The hub's store, the part every feature shares: the engine, the transaction runner, the evidence files.

`StoreBase.open(db_url, data_dir)` runs migrations, then every write is one short transaction that commits
before the method returns (`write`). Evidence bytes go to disk (content-addressed, synced) before the
transaction, so a committed event never points at a missing file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self, TypeVar

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from hub.cases import classes, dedup
from hub.cases.lifecycle import CaseStatus, Deadlines
from hub.evidence.files import EvidenceStore
from hub.storage import db, migrations

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreError(ValueError):
    """Input the store refuses; the message names what is wrong."""


@dataclass
class StoreCounters:
    """In-process counts for /metrics."""

    events: int = 0
    duplicates: int = 0
    cases_created: int = 0


class StoreBase:
    """The unit of work: `write(fn)` runs one short transaction that commits (durably) before it returns;
    reads use `engine.connect()`. Also the evidence files, the deadline rule and the change listeners
    that every feature's store methods share (hub.storage.store.Store puts them together)."""

    def __init__(
        self,
        engine: Engine,
        data_dir: Path,
        *,
        deadlines: Deadlines | None = None,
        policy: Callable[[str], dedup.DedupPolicy] = classes.dedup_policy,
        evidence_fsync: bool = True,
    ) -> None:
        self.engine = engine
        self._writer = db.WriterLock.for_engine(engine)  # SQLite: writers queue instead of polling
        self.data_dir = data_dir
        self.evidence = EvidenceStore(data_dir / "evidence", fsync=evidence_fsync)
        self.deadlines = deadlines
        self.policy = policy
        self.counters = StoreCounters()
        self.on_change: list[Callable[[str, str], None]] = []  # (case_id, kind) after commit

    @classmethod
    def open(cls, db_url: str | None, data_dir: Path, *, migrate: bool = True, **kwargs: Any) -> Self:
        """Open (and migrate) the store; SQLite at data_dir/hub.db when `db_url` is None."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        engine = db.make_engine(db_url or db.sqlite_url(data_dir))
        if migrate:
            migrations.migrate(engine)
        return cls(engine, data_dir, **kwargs)

    def close(self) -> None:
        self.engine.dispose()
        db.forget_wal(self.engine)
        self._writer.close()

    def ping(self) -> None:
        """Raise unless the database answers (health checks)."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    @property
    def is_postgres(self) -> bool:
        return db.is_postgres(self.engine)

    # ---- transactions ----------------------------------------------------------------------------

    def write(self, fn: Callable[[Connection], T], attempts: int = 5, *,
              before_waiting: Callable[[], object] | None = None) -> T:
        """Run `fn` in one write transaction (db.begin_write, after the SQLite writer queue), retrying
        PostgreSQL deadlocks and serialisation failures; committed and durable when it returns. Reads
        need none of this: `engine.connect()`. `before_waiting`: see db.WriterLock.hold."""
        for attempt in range(attempts):
            try:
                with self._writer.hold(before_waiting), db.begin_write(self.engine, sync=False) as conn:
                    result = fn(conn)
                db.sync_wal(self.engine)  # durable before returning; the next writer is already in
                return result
            except DBAPIError as exc:
                code = getattr(exc.orig, "sqlstate", None)
                if code not in ("40001", "40P01") or attempt == attempts - 1:
                    raise
                log.info("retrying transaction after %s (attempt %d)", code, attempt + 1)
                time.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    def _insert(self, conn: Connection, table: Any) -> Any:
        return (pg_insert if db.is_postgres(conn) else sqlite_insert)(table)

    def deadline(self, class_id: str, status: CaseStatus, start: datetime) -> datetime | None:
        """When a case of `class_id` entering `status` at `start` must leave it (None: no deadline)."""
        return self.deadlines.deadline(class_id, status, start) if self.deadlines else None

    def notify(self, case_id: str, kind: str) -> None:
        """Tell this process's listeners (SSE wake-up, webhook worker) that a case changed."""
        for callback in list(self.on_change):
            try:
                callback(case_id, kind)
            except Exception:  # a broken listener must not fail an ingest that already committed
                log.exception("case-change listener failed")

    def evidence_path(self, sha256: str) -> Path:
        return self.evidence.path(sha256)

    def evidence_bytes(self, sha256: str) -> bytes:
        return self.evidence.get(sha256)
