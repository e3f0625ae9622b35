"""The hub's database engine: one SQLAlchemy Core data layer for SQLite (embedded) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout. A write transaction (`begin_write`: Store.write, migrate)
is durable when it returns, yet holds the write lock only while it writes: SQLite commits without syncing
(`synchronous=NORMAL`), then `sync_wal` syncs the WAL file outside the lock (see there). It
starts with BEGIN IMMEDIATE, so the single writer is decided up front and a writer waits for the lock
before it reads anything (a deferred transaction that reads, then writes, fails with SQLITE_BUSY at once
when another writer committed in between). Every other transaction, e.g. `engine.connect()` in the API,
is a read: a deferred BEGIN that reads a WAL snapshot without waiting for writers, under
`PRAGMA query_only` so a write there fails at once instead of only under contention. PostgreSQL runs
through psycopg 3. The tables are in hub.storage.schema, the migrations in hub.storage.migrations.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    String,
    Table,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, CursorResult, Engine

from hub.storage.fsync import datasync_fd, sync_path


def utcnow() -> datetime:
    return datetime.now(UTC)


def naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the hub database; use UTC-aware datetimes")
    return value.astimezone(UTC).replace(tzinfo=None)




def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'hub.db'}"


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout, and BEGIN IMMEDIATE for `begin_write`."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_setup(engine)
        return engine
    if not url.startswith("postgresql+psycopg://"):
        raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")
    return create_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # let us emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        # NORMAL: a commit writes the WAL without syncing it; begin_write's caller syncs it after the
        # commit (sync_wal), so a power cut still cannot lose what the hub acknowledged.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = not conn.get_execution_options().get(_WRITE, False)
        if conn.info.get(_QUERY_ONLY) != read_only:  # a connection's setting: change it only when needed
            conn.exec_driver_sql(f"PRAGMA query_only={int(read_only)}")
            conn.info[_QUERY_ONLY] = read_only  # conn.info lives (and is cleared) with the DBAPI connection
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


_WRITE = "cityeye_write"  # execution option of a write transaction's connection (begin_write)
_QUERY_ONLY = "cityeye_query_only"


@contextlib.contextmanager
def begin_write(engine: Engine, *, sync: bool = True) -> Iterator[Connection]:
    """A write transaction, committed when the block ends (rolled back on an error). On SQLite it starts
    with BEGIN IMMEDIATE; any other transaction there is a read and refuses to write ("attempt to write a
    readonly database"). Store.write adds the writer queue and retries: prefer it.
    `sync=False`: the caller calls `sync_wal` itself before relying on the commit (Store.write does, once
    it has let the next writer in)."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn
    if sync:
        sync_wal(engine)


def sync_wal(engine: Engine) -> None:
    """Make every SQLite commit so far durable: fdatasync the WAL file. No-op on PostgreSQL.

    SQLite's own FULL mode syncs the WAL inside the commit, so under its write lock: every other writer
    (the other ingest processes, the API) waits for the disk too, and commits are synced one by one.
    Synced here, after the commit, the next writer is already writing while this one waits, and one sync
    covers every commit written before it. SQLite syncs the WAL before it checkpoints it into the
    database and the database after, so a commit is on disk whether it is still in the WAL or not."""
    path = _wal_path(engine)
    if path is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # the last connection closed: SQLite checkpointed it (synced) and removed it
        return
    try:
        datasync_fd(fd)
        with _synced_wals_lock:
            if _same_file(_synced_wals.get(path), fd):
                return
            # A new WAL file: its directory entry must be durable as well. Keep it open from now on, so
            # that no later file can get its inode number while it is remembered (see _synced_wals).
            sync_path(os.path.dirname(path) or ".", data_only=False)
            old = _synced_wals.pop(path, None)
            if old is not None:
                os.close(old)
            _synced_wals[path], fd = fd, -1
    finally:
        if fd >= 0:
            os.close(fd)


def _same_file(held: int | None, fd: int) -> bool:
    """`fd` opens the file `held` was opened on, and that file was not removed meanwhile."""
    if held is None:
        return False
    a, b = os.fstat(held), os.fstat(fd)
    return a.st_nlink > 0 and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def forget_wal(engine: Engine) -> None:
    """Close the WAL file `sync_wal` holds for this database (the store is closing)."""
    path = _wal_path(engine)
    with _synced_wals_lock:
        held = _synced_wals.pop(path, None) if path else None
    if held is not None:
        os.close(held)


def _wal_path(engine: Engine) -> str | None:
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    return f"{database}-wal" if database and database != ":memory:" else None


# Per database file: the WAL file whose directory entry was synced, held open. A WAL removed (all
# connections closed) and created again is another file whose entry must be synced too; telling them apart
# by inode number alone fails when the new file gets the old one's number, which a held-open file's
# number cannot be given to (and a removed one shows st_nlink 0).
_synced_wals: dict[str, int] = {}
_synced_wals_lock = threading.Lock()


class WriterLock:
    """Queues SQLite's writers across threads and processes (ingest workers, the API).

    SQLite has one writer at a time, and a writer that finds the lock taken waits in the busy handler,
    which polls with sleeps of 1 to 100 ms: writers in several processes then hand the database over
    slowly and out of order. Taken before BEGIN IMMEDIATE, this lock (a thread lock, then an exclusive
    flock on a file beside the database) makes the next writer start the moment the last one commits.
    PostgreSQL needs none: `for_engine` gives a no-op there."""

    def __init__(self, path: str | None, *, enabled: bool = True) -> None:
        self._threads = threading.Lock() if enabled else None
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600) if enabled and path and _flock else None

    @classmethod
    def for_engine(cls, engine: Engine) -> WriterLock:
        if engine.dialect.name != "sqlite":
            return cls(None, enabled=False)
        database = engine.url.database
        return cls(f"{database}.writer-lock" if database and database != ":memory:" else None)

    @contextlib.contextmanager
    def hold(self, before_waiting: Callable[[], object] | None = None) -> Iterator[None]:
        """Hold the writer lock for the block. `before_waiting`: run first when another process has the
        lock (e.g. wait for what the transaction must wait for anyway, rather than while holding it)."""
        if self._threads is None:
            yield
            return
        with self._threads:
            if self._fd is not None:
                if before_waiting is None:
                    _flock(self._fd, _LOCK_EX)  # blocks in the kernel, without the GIL
                else:
                    try:
                        _flock(self._fd, _LOCK_EX | _LOCK_NB)
                    except BlockingIOError:
                        before_waiting()
                        _flock(self._fd, _LOCK_EX)
            try:
                yield
            finally:
                if self._fd is not None:
                    _flock(self._fd, _LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


try:
    from fcntl import LOCK_EX as _LOCK_EX
    from fcntl import LOCK_NB as _LOCK_NB
    from fcntl import LOCK_UN as _LOCK_UN
    from fcntl import flock as _flock
except ImportError:  # not POSIX: threads are still queued, processes fall back to the busy handler
    _flock = None  # type: ignore[assignment]
    _LOCK_EX = _LOCK_NB = _LOCK_UN = 0


def is_postgres(conn_or_engine: Connection | Engine) -> bool:
    return conn_or_engine.dialect.name == "postgresql"


def advisory_lock(conn: Connection, key: str) -> None:
    """Serialise writers on `key` until the transaction ends (PostgreSQL); SQLite has one writer."""
    if is_postgres(conn):
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id(key)})


def lock_id(key: str) -> int:
    """The 64-bit advisory lock id of `key`."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


_LOCK_MANY = text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:ks AS bigint[])) AS k")


def advisory_locks(conn: Connection, keys: Iterable[str]) -> None:
    """Take the transaction locks of all `keys` in one round trip, in ascending lock-id order (the one
    order every writer uses, so two writers can't each hold a lock the other waits for); SQLite: no-op."""
    if is_postgres(conn):
        ids = sorted({lock_id(k) for k in keys})
        if ids:
            conn.execute(_LOCK_MANY, {"ks": ids})



# ---- driver SQL for the ingest hot path ------------------------------------------------------------------
# An ingest burst writes hundreds of rows in one transaction. Through compiled Core statements SQLAlchemy
# spends more CPU per row (construct_params, a bind processor call per value) than the database does, and
# psycopg's executemany more again (Python work per row in its pipeline). So the hot statements are plain
# SQL run with Connection.exec_driver_sql (same transaction, errors still wrapped as DBAPIError), on rows
# whose values are already what the Core types would have sent (`bind_time`, `bind_json`;
# tests/hub/storage/test_store.py compares the stored text with a Core statement's): executemany on SQLite
# (a C loop), one statement over unnest() arrays on PostgreSQL. Values of one column must share a Python
# type (psycopg refuses a list mixing int and float).

_PG = postgresql.dialect()


class JSONText(str):
    """A JSON document already encoded (e.g. by pydantic's serializer): `bind_json` passes it through."""


def bind_json(value: Any) -> str:
    """A JSON column's driver value: the JSON type's default serializer; None is stored as JSON null."""
    return value if isinstance(value, JSONText) else json.dumps(value)


def _sqlite_time(value: datetime) -> str:
    # SQLAlchemy's SQLite DATETIME storage format: always 6 fraction digits, so text order is time order.
    # A time already in UTC (the usual case) needs no conversion: its text less the "+00:00" suffix.
    if value.utcoffset() == _ZERO:
        return value.isoformat(" ", "microseconds")[:26]
    return naive_utc(value).isoformat(" ", "microseconds")


_ZERO = timedelta(0)


def result_time(value: str | datetime) -> datetime:
    """A UTCDateTime column's value as the driver returns it (SQLite: text; PostgreSQL: a naive datetime),
    as the column type returns it: an aware UTC datetime."""
    return (datetime.fromisoformat(value) if isinstance(value, str) else value).replace(tzinfo=UTC)


def bind_time(conn: Connection) -> Callable[[datetime], Any]:
    """A UTCDateTime column's driver value for this connection (call it with a datetime, not None)."""
    return naive_utc if is_postgres(conn) else _sqlite_time


def _array(column: Column[Any]) -> str:
    """A parameter cast to an array of the column's type. Strings unbounded: an explicit cast to VARCHAR(n)
    would truncate a long value that the column itself refuses. Binary format (%b): psycopg escapes every
    element of a text-format array in Python, twenty times slower for JSON and bytes."""
    sql_type = "VARCHAR" if isinstance(column.type, String) else column.type.compile(dialect=_PG)
    return f"CAST(%b AS {sql_type}[])"


@dataclass(frozen=True)
class Batch:
    """One statement over many rows (tuples in the order the builder named the columns)."""

    sqlite: str  # one row, ? placeholders: executemany
    postgres: str  # one array per column, unnested

    def run(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> CursorResult[Any] | None:
        if not rows:
            return None
        if is_postgres(conn):
            return conn.exec_driver_sql(self.postgres, tuple(list(column) for column in zip(*rows, strict=True)))
        return conn.exec_driver_sql(self.sqlite, list(rows))


def insert_values(table: Table, columns: Sequence[str], rows: int = 1) -> str:
    """`INSERT INTO table (columns) VALUES (?, ...), ...` for `rows` rows (SQLite's paramstyle)."""
    values = "(" + ", ".join("?" * len(columns)) + ")"
    return f"INSERT INTO {table.name} ({', '.join(table.c[c].name for c in columns)}) VALUES " + ", ".join(
        [values] * rows)


def batch_insert(table: Table, columns: Sequence[str], *, suffix: str = "") -> Batch:
    """INSERT rows of `columns` (then `suffix`: ON CONFLICT, RETURNING)."""
    arrays = ", ".join(_array(table.c[c]) for c in columns)
    return Batch(sqlite=insert_values(table, columns) + suffix,
                 postgres=f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays}){suffix}")


def batch_update(table: Table, columns: Sequence[str], key: str, *, add: Sequence[str] = ()) -> Batch:
    """UPDATE the row whose `key` is given: set `columns`, or add to them for those in `add`.
    Rows: (*columns, key); the keys must be distinct."""
    t = table.name
    arrays = ", ".join(_array(table.c[c]) for c in (*columns, key))  # an unknown name fails here, at import
    if not set(add) <= set(columns):
        raise ValueError(f"add {sorted(add)} is not among the columns {list(columns)}")
    sqlite = ", ".join(f"{c} = {c} + ?" if c in add else f"{c} = ?" for c in columns)
    postgres = ", ".join(f"{c} = {t}.{c} + v.{c}" if c in add else f"{c} = v.{c}" for c in columns)
    return Batch(sqlite=f"UPDATE {t} SET {sqlite} WHERE {key} = ?",
                 postgres=f"UPDATE {t} SET {postgres} FROM unnest({arrays}) AS v({', '.join(columns)}, {key}) "
                          f"WHERE {t}.{key} = v.{key}")
