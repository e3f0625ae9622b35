"""The Store contract the ingest path relies on, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from hub.devices.registry import UnknownDevice
from hub.storage import db, fsync, migrations, schema
from hub.storage.core import StoreError
from hub.storage.store import Store
from protocol.messages import CameraHealth, GroundPoint, Heartbeat
from tests.hub.hubfactory import T0, ingest, make_event


def test_ingest_is_idempotent_and_keeps_manifest(store: Store) -> None:
    event, media = make_event(event_id="ev-00000001")
    first = ingest(store, event, media)
    again = ingest(store, event, media)
    assert not first.duplicate and first.case_id and first.created
    assert again.duplicate and again.case_id == first.case_id
    record = store.get_event("ev-00000001")
    assert record is not None
    assert record.event == event and record.case_id == first.case_id
    assert record.manifest == b'{"m":1}' and record.signature.startswith(b"sigsig")
    sha = event.media[0].sha256
    assert store.evidence_bytes(sha) == media["snapshot.jpg"]
    assert store.evidence_path(sha).name == sha
    assert store.get_event("ev-missing1") is None


def test_media_must_match_the_declared_list(store: Store) -> None:
    event, media = make_event()
    with pytest.raises(StoreError, match="do not match the event's media list"):
        ingest(store, event, {})
    with pytest.raises(StoreError, match="bytes, but the event declares"):
        ingest(store, event, {"snapshot.jpg": media["snapshot.jpg"] + b"x"})
    tampered = bytearray(media["snapshot.jpg"])
    tampered[5] ^= 1
    with pytest.raises(StoreError, match="does not match the declared"):
        ingest(store, event, {"snapshot.jpg": bytes(tampered)})
    assert store.get_event(event.event_id) is None
    assert ingest(store, event, media).created  # nothing half-stored blocks the real one


def test_evidence_paths_are_hashes_only(store: Store) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        store.evidence_path("../../etc/passwd")
    with pytest.raises(FileNotFoundError):
        store.evidence_bytes(hashlib.sha256(b"never stored").hexdigest())


def test_heartbeats_of_many_devices_in_one_transaction(store: Store) -> None:
    """A device's latest heartbeat wins; a camera that moved to another box follows it; unknown devices
    are not tracked (their cameras still are, as before)."""
    for d in ("box-1", "box-2"):
        store.add_device(d, f"curve-{d}", f"sign-{d}")

    def hb(device: str, version: str, *cams: tuple[str, bool]) -> Heartbeat:
        return Heartbeat(device_id=device, sent_at=datetime.now(UTC), agent_version=version,
                         cameras=[CameraHealth(camera_id=c, online=on) for c, on in cams])

    store.record_heartbeats([hb("box-1", "1.0", ("cam-a", True), ("cam-b", True)),
                             hb("box-2", "2.0", ("cam-c", False)),
                             hb("box-1", "1.1", ("cam-a", False), ("cam-b", True)),
                             hb("box-2", "2.1", ("cam-c", True), ("cam-b", False))])
    assert store.get_device("box-1").agent_version == "1.1"  # type: ignore[union-attr]
    assert store.get_device("box-2").agent_version == "2.1"  # type: ignore[union-attr]
    with store.engine.connect() as conn:
        cams = {r.camera_id: (r.device_id, r.online) for r in conn.execute(select(schema.cameras))}
    assert cams == {"cam-a": ("box-1", False), "cam-b": ("box-2", False), "cam-c": ("box-2", True)}
    store.record_heartbeats([])


def test_device_registry_and_heartbeat(store: Store) -> None:
    store.add_device("box-1", "curve-pub", "sign-pub")
    with pytest.raises(StoreError, match="already enrolled"):
        store.add_device("box-1", "x", "y")
    dev = store.get_device("box-1")
    assert dev is not None and not dev.revoked and dev.last_seen is None
    assert dev.curve_public_key == "curve-pub" and dev.sign_public_key == "sign-pub"
    store.record_heartbeat(
        Heartbeat(device_id="box-1", sent_at=datetime.now(UTC), agent_version="0.1",
                  cameras=[CameraHealth(camera_id="cam-1", online=True, detect_fps=5.0)])
    )
    store.record_heartbeat(
        Heartbeat(device_id="box-1", sent_at=datetime.now(UTC),
                  cameras=[CameraHealth(camera_id="cam-1", online=False, last_error="rtsp timeout")])
    )
    dev = store.get_device("box-1")
    assert dev is not None and dev.last_seen is not None
    store.revoke_device("box-1")
    assert store.get_device("box-1").revoked  # type: ignore[union-attr]
    with pytest.raises(UnknownDevice):
        store.revoke_device("nobody")
    assert [d.device_id for d in store.list_devices()] == ["box-1"]
    store.add_device("box-1", "new-curve", "new-sign", replace=True)
    assert not store.get_device("box-1").revoked  # type: ignore[union-attr]


def test_reopen_existing_database(db_url: str | None, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Store.open(db_url, tmp_path / "hub")
    event, media = make_event(at=T0)
    case_id = ingest(s, event, media).case_id
    s.close()
    s = Store.open(db_url, tmp_path / "hub")
    assert ingest(s, event, media).case_id == case_id
    s.close()


def _indexes(engine: db.Engine, table: str) -> dict[str, list[str]]:
    return {ix["name"]: list(ix["column_names"]) for ix in inspect(engine).get_indexes(table)}


METADATA_INDEXES = {ix.name: [c.name for c in ix.columns] for ix in schema.cases.indexes}


def test_fresh_database_has_every_step_and_index(store: Store) -> None:
    with store.engine.connect() as conn:
        versions = list(conn.execute(select(schema.schema_version.c.version).order_by(schema.schema_version.c.version))
                        .scalars())
    assert versions == [v for v, _, _ in migrations.MIGRATIONS] and versions[-1] == migrations.SCHEMA_VERSION
    assert _indexes(store.engine, "cases") == METADATA_INDEXES


def test_version_1_database_migrates_to_the_dedup_indexes(db_url: str | None, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A database made before step 2 keeps its data and ends with the indexes a fresh one has."""
    engine = db.make_engine(db_url or db.sqlite_url(tmp_path))
    added = ("ix_cases_dedup_camera", "ix_cases_dedup_ground")
    with db.begin_write(engine) as conn:  # version 1 as released: step 1 made the tables without them
        migrations.MIGRATIONS[0][2](conn)
        for name in added:
            conn.exec_driver_sql(f"DROP INDEX {name}")
        conn.execute(schema.schema_version.insert().values(version=1, name="initial schema", applied_at=db.utcnow()))
    assert not set(added) & set(_indexes(engine, "cases"))
    old = Store(engine, tmp_path / "hub")
    event, media = make_event(event_id="ev-before-v2", ground=GroundPoint(crs="wgs84", x=116.4, y=39.9))
    case_id = ingest(old, event, media).case_id

    assert migrations.migrate(engine) == migrations.SCHEMA_VERSION
    assert _indexes(engine, "cases") == METADATA_INDEXES
    assert migrations.migrate(engine) == migrations.SCHEMA_VERSION  # nothing left to do
    store = Store(engine, tmp_path / "hub")
    assert store.get_event("ev-before-v2").case_id == case_id  # type: ignore[union-attr]
    # Another camera, the same spot on the ground: found through the new ground index.
    again, media = make_event(event_id="ev-after-v2", camera_id="cam-9", zone="elsewhere",
                              ground=GroundPoint(crs="wgs84", x=116.40001, y=39.9))
    assert ingest(store, again, media).case_id == case_id
    store.close()


def test_version_3_database_migrates_to_the_statistics_indexes(db_url: str | None, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A database made before step 4: ix_cases_created gives way to the covering statistics indexes, and
    /stats counts the same before and after."""
    from hub.cases import queries

    engine = db.make_engine(db_url or db.sqlite_url(tmp_path))
    added = {"cases": ("ix_cases_stats", "ix_cases_closed"), "events": ("ix_events_observed",)}
    with db.begin_write(engine) as conn:  # version 3 as released
        migrations.MIGRATIONS[0][2](conn)
        for name in (*added["cases"], *added["events"]):
            conn.exec_driver_sql(f"DROP INDEX {name}")
        conn.exec_driver_sql("CREATE INDEX ix_cases_created ON cases (created_at)")
        for version, name, _ in migrations.MIGRATIONS[:3]:
            conn.execute(schema.schema_version.insert().values(version=version, name=name, applied_at=db.utcnow()))
    old = Store(engine, tmp_path / "hub")
    for n in range(3):
        event, media = make_event(event_id=f"ev-before-v4-{n}", camera_id=f"cam-{n % 2}")
        ingest(old, event, media)
    since, until = T0 - timedelta(days=1), db.utcnow() + timedelta(days=1)
    with engine.connect() as conn:
        before = queries.statistics_for(conn, since, until)
    assert before["per_class"][0]["events"] == 3 and before["per_camera_total"] == 2

    assert migrations.migrate(engine) == migrations.SCHEMA_VERSION
    assert _indexes(engine, "cases") == METADATA_INDEXES and "ix_cases_created" not in METADATA_INDEXES
    assert set(added["events"]) <= set(_indexes(engine, "events"))
    with engine.connect() as conn:
        assert queries.statistics_for(conn, since, until) == before
    old.close()


def test_sqlite_read_transactions_cannot_write(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Only db.begin_write (Store.write) takes SQLite's write lock; a write anywhere else fails at once,
    not only when it meets another writer."""
    store = Store.open(None, tmp_path)
    with store.engine.connect() as conn, pytest.raises(OperationalError, match="readonly"):
        conn.execute(schema.kv.insert().values(key="k", value=1))
    store.write(lambda conn: conn.execute(schema.kv.insert().values(key="k", value=2)))  # the same pooled connection
    with store.engine.connect() as conn:
        assert conn.execute(select(schema.kv.c.value)).scalar_one() == 2
    store.close()


def test_burst_is_one_transaction_with_errors_isolated(store: Store) -> None:
    from hub.ingest.burst import IngestItem

    def item(event, media):  # type: ignore[no-untyped-def]
        return IngestItem(event, media, b'{"m":1}', b"s" * 64, 1)

    old, old_media = make_event(event_id="ev-old00001", problem_id="prob-old1", zone="z9")
    ingest(store, old, old_media)
    first = make_event(event_id="ev-00000001", problem_id="prob-aaa1", at=T0)
    repeat = make_event(event_id="ev-00000002", problem_id="prob-aaa1", at=T0 + timedelta(seconds=30))
    other = make_event(event_id="ev-00000003", problem_id="prob-bbb1", zone="z2")
    bad_event, bad_media = make_event(event_id="ev-00000004", problem_id="prob-ccc1", zone="z3")
    bad_media = {"snapshot.jpg": bad_media["snapshot.jpg"][:-1] + b"!"}  # same size, other bytes
    results = store.ingest_events([item(*first), item(*repeat), item(bad_event, bad_media), item(*first),
                                   item(*other), item(old, old_media)])
    r_first, r_repeat, r_bad, r_again, r_other, r_old = results
    assert not isinstance(r_first, Exception) and r_first.created and not r_first.duplicate
    assert not isinstance(r_repeat, Exception) and r_repeat.case_id == r_first.case_id and not r_repeat.created
    assert isinstance(r_bad, StoreError) and "does not match the declared" in str(r_bad)
    assert not isinstance(r_again, Exception) and r_again.duplicate and r_again.case_id == r_first.case_id
    assert not isinstance(r_other, Exception) and r_other.created and r_other.case_id != r_first.case_id
    assert not isinstance(r_old, Exception) and r_old.duplicate
    assert store.get_event("ev-00000004") is None
    assert not store.evidence.exists(bad_event.media[0].sha256)
    for event, _ in (first, repeat, other):
        assert store.evidence_bytes(event.media[0].sha256)
        assert (rec := store.get_event(event.event_id)) is not None and rec.case_id
    with store.engine.connect() as conn:
        c = schema.cases
        count = conn.execute(select(c.c.event_count).where(c.c.case_id == r_first.case_id)).scalar()
    assert count == 2


def test_evidence_burst_rewrites_a_damaged_copy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hub.evidence.files import EvidenceError, EvidenceStore

    ev = EvidenceStore(tmp_path / "evidence")
    good, other = b"\xff\xd8good\xff\xd9", b"\xff\xd8other\xff\xd9"
    sha = hashlib.sha256(good).hexdigest()
    ev.put(good)
    ev.path(sha).write_bytes(b"\x00" * len(good))  # a crash left zeros under the right name and size
    stored = ev.put_many([(good, sha), (other, sha), (other, None)])
    assert stored[0] == sha and isinstance(stored[1], EvidenceError) and stored[2] == hashlib.sha256(other).hexdigest()
    assert ev.get(sha) == good
    assert not list((tmp_path / "evidence").rglob(".tmp-*"))


@pytest.mark.parametrize("syncfs", [True, False], ids=["one-syncfs-per-burst", "per-file-sync"])
def test_evidence_burst_is_durable_by_either_sync_path(tmp_path, monkeypatch, syncfs: bool) -> None:  # type: ignore[no-untyped-def]
    """Both ways of making a burst durable store every blob and report a blob whose directory can't
    be created as that blob's error, without failing the others."""
    from hub.evidence import files as evidence

    if syncfs and evidence._syncfs is None:
        pytest.skip("this platform has no syncfs(2)")
    if not syncfs:
        monkeypatch.setattr(evidence, "_syncfs", None)
    ev = evidence.EvidenceStore(tmp_path / "evidence")
    blobs = [bytes([i]) * (1000 + i) for i in range(20)]
    blocked = hashlib.sha256(b"blocked").hexdigest()
    (tmp_path / "evidence" / blocked[:2]).write_bytes(b"")  # a file where its directory should be
    stored = ev.put_many([(b, None) for b in blobs] + [(b"blocked", None)])
    assert stored[:-1] == [hashlib.sha256(b).hexdigest() for b in blobs]
    assert isinstance(stored[-1], OSError)
    assert all(ev.get(s) == b for s, b in zip(stored, blobs))


def _cached_pages(path) -> int:  # type: ignore[no-untyped-def]
    """How many of a file's pages sit in the page cache: mincore(2) on a private mapping of it."""
    import ctypes
    import mmap

    size = path.stat().st_size
    vec = (ctypes.c_ubyte * -(-size // mmap.PAGESIZE))()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as m:
        start = ctypes.c_char.from_buffer(m)
        rc = ctypes.CDLL(None, use_errno=True).mincore(ctypes.c_void_p(ctypes.addressof(start)),
                                                       ctypes.c_size_t(size), vec)
        del start  # the mapping can't close while a ctypes view of it exists
    assert rc == 0, f"mincore failed: errno {ctypes.get_errno()}"
    return sum(v & 1 for v in vec)


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this platform")
@pytest.mark.parametrize("fsync", [True, False], ids=["synced", "not-synced"])
def test_synced_evidence_leaves_the_page_cache(tmp_path, fsync: bool) -> None:  # type: ignore[no-untyped-def]
    """Evidence is written once and read rarely: once synced, its pages are dropped rather than left to
    crowd out the database's. Unsynced (fsync off) pages are dirty and can't be dropped; they stay."""
    from hub.evidence.files import EvidenceStore

    ev = EvidenceStore(tmp_path / "evidence", fsync=fsync)
    blobs = [os.urandom(256 * 1024) for _ in range(3)]
    stored = ev.put_many([(b, None) for b in blobs])
    cached = [_cached_pages(ev.path(s)) for s in stored]
    assert cached == [0, 0, 0] if fsync else all(c == 64 for c in cached), cached
    assert [ev.get(s) for s in stored] == blobs  # and read back from disk intact


def test_ingest_statements_store_what_the_core_types_store(store: Store) -> None:
    """The ingest path binds values itself (db.bind_time, db.bind_json, db.Batch): the stored text must be
    exactly what a Core statement stores, on either database."""
    from hub.cases.transitions import _CHANGE_INSERT

    times = [T0, T0.replace(microsecond=5), datetime(2026, 3, 1, 7, 30, tzinfo=timezone(timedelta(hours=8)))]
    data = [None, {"a": 1, "b": [1.5, "x", None]}, {"ü": "ß"}]
    with db.begin_write(store.engine) as conn:
        for n, (at, value) in enumerate(zip(times, data, strict=True)):
            conn.execute(schema.case_changes.insert().values(at=at, case_id=f"core-{n}", kind="k", status="s",
                                                             data=value))
        t = db.bind_time(conn)
        _CHANGE_INSERT.run(conn, [(t(at), f"fast-{n}", "k", "s", db.bind_json(value))
                                  for n, (at, value) in enumerate(zip(times, data, strict=True))])
        rows = conn.execute(text("SELECT case_id, CAST(at AS TEXT), CAST(data AS TEXT) FROM case_changes")).all()
        if store.is_postgres:  # arrays are cast to unbounded VARCHAR: a too long value still fails, not cut
            with pytest.raises(DBAPIError, match="too long"), conn.begin_nested():
                _CHANGE_INSERT.run(conn, [(t(T0), "x", "k" * 40, "s", "null")])
    stored = {k: {r[0].split("-")[1]: tuple(r[1:]) for r in rows if r[0].startswith(k)} for k in ("core", "fast")}
    assert stored["core"] == stored["fast"] and len(stored["core"]) == len(times)


def test_stored_payload_is_the_event_document(store: Store) -> None:
    event, media = make_event(event_id="ev-payload1", ground=GroundPoint(crs="wgs84", x=116.4, y=39.9))
    ingest(store, event, media)
    with store.engine.connect() as conn:
        e = schema.events
        payload = conn.execute(select(e.c.payload).where(e.c.event_id == "ev-payload1")).scalar_one()
    assert payload == event.model_dump(mode="json")


def test_failing_burst_is_retried_item_by_item(store: Store) -> None:
    """A burst whose transaction fails is stored again one transaction per item: only the culprit fails."""
    from hub.ingest.burst import IngestItem, _edge_intake, _Intake

    good = [_edge_intake(IngestItem(e, m, b"m", b"s", 1)) for e, m in (
        make_event(event_id="ev-retry001", problem_id="prob-retry1", zone="r1"),
        make_event(event_id="ev-retry002", problem_id="prob-retry2", zone="r2"))]
    naive = {**good[1].row, "event_id": "ev-retry003", "observed_at": T0.replace(tzinfo=None)}
    first, failed, second = store._ingest_intakes([good[0], _Intake(good[1].obs, naive, []), good[1]])
    assert isinstance(failed, ValueError) and "naive" in str(failed)
    assert not isinstance(first, Exception) and first.created
    assert not isinstance(second, Exception) and second.created and second.case_id != first.case_id
    assert store.get_event("ev-retry003") is None and store.get_event("ev-retry002") is not None


def test_item_by_item_retry_commits_nothing_before_its_evidence_is_durable(store: Store) -> None:
    """The item-by-item retry of a failed burst commits each item on its own: only once the burst's
    evidence sync has finished, and never an item whose files failed to sync."""
    import threading

    from hub.ingest.burst import IngestItem, _edge_intake, _Intake

    good = [_edge_intake(IngestItem(e, m, b"m", b"s", 1)) for e, m in (
        make_event(event_id="ev-durab001", problem_id="prob-durab1", zone="d1"),
        make_event(event_id="ev-durab002", problem_id="prob-durab2", zone="d2"))]
    naive = {**good[1].row, "event_id": "ev-durab003", "observed_at": T0.replace(tzinfo=None)}
    synced = threading.Event()

    def slow_sync() -> dict[int, Exception]:  # the evidence sync, finishing late, and failing item 2
        synced.set()
        return {2: OSError(5, "Input/output error")}

    committed_early = []
    store.on_change.append(lambda case_id, kind: committed_early.append(not synced.is_set()))
    first, bad, second = store._ingest_intakes([good[0], _Intake(good[1].obs, naive, []), good[1]],
                                               before_commit=slow_sync)
    assert isinstance(bad, ValueError) and isinstance(second, OSError)
    assert not isinstance(first, Exception) and first.created
    assert committed_early == [False]  # item 0 committed once the sync was done
    assert store.get_event("ev-durab002") is None  # its evidence never became durable: not stored


def test_burst_larger_than_one_insert_statement(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite inserts a burst's events in multi-row statements of bounded size; duplicates anywhere."""
    import hub.ingest.burst
    from hub.ingest.burst import IngestItem

    monkeypatch.setattr(hub.ingest.burst, "_EVENTS_PER_VALUES", 2)
    events = [make_event(event_id=f"ev-chunk{n:03d}", problem_id=f"prob-chunk{n}", zone=f"c{n}") for n in range(5)]
    ingest(store, *events[1])
    results = store.ingest_events([IngestItem(e, m, b"m", b"s", 1) for e, m in [*events, events[3]]])
    assert not any(isinstance(r, Exception) for r in results)
    assert [(r.duplicate, r.created) for r in results] == [  # type: ignore[union-attr]
        (False, True), (True, False), (False, True), (False, True), (False, True), (True, False)]
    assert results[5].case_id == results[3].case_id  # type: ignore[union-attr]
    assert all((rec := store.get_event(e.event_id)) is not None and rec.media for e, _ in events)


def test_event_stored_concurrently_after_the_check_reruns_the_burst(store: Store,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The burst checks which events are stored, dedups the new ones, then inserts them with their case. An
    event another writer stored in between (the check missed it) must not count: the burst rolls back and
    runs again, and reports it as a duplicate."""
    import hub.ingest.burst
    from hub.ingest.burst import IngestItem

    first = ingest(store, *make_event(event_id="ev-raced0001", problem_id="prob-raced"))
    check, calls = hub.ingest.burst._stored_events, []

    def missing_once(conn, keys):  # type: ignore[no-untyped-def]
        calls.append(keys)
        return {} if len(calls) == 1 else check(conn, keys)

    monkeypatch.setattr(hub.ingest.burst, "_stored_events", missing_once)
    again, other = make_event(event_id="ev-raced0001", problem_id="prob-raced"), make_event(
        event_id="ev-raced0002", problem_id="prob-raced")
    results = store.ingest_events([IngestItem(e, m, b"m", b"s", 1) for e, m in (again, other)])
    assert [(r.duplicate, r.case_id) for r in results] == [  # type: ignore[union-attr]
        (True, first.case_id), (False, first.case_id)]
    with store.engine.connect() as conn:
        count = conn.execute(select(schema.cases.c.event_count).where(schema.cases.c.case_id == first.case_id)).scalar()
    assert count == 2 and len(calls) == 2


def test_sqlite_commits_are_synced_after_the_writer_lock_is_released(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """SQLite commits without syncing (synchronous=NORMAL) and Store.write syncs the WAL itself before it
    returns, once the writer queue is free: the next writer writes while this one waits for the disk, and
    a write that returned is on disk all the same."""
    import fcntl

    from hub.app import open_store
    from hub.settings import HubSettings

    store = open_store(HubSettings(data_dir=tmp_path / "hub"))
    try:
        wal = f"{store.engine.url.database}-wal"
        lock_path = f"{store.engine.url.database}.writer-lock"
        real, synced = fsync._datasync, []

        def datasync(fd: int) -> None:
            probe = os.open(lock_path, os.O_RDWR)
            try:  # another process could take the writer lock now?
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(probe, fcntl.LOCK_UN)
                free = True
            except BlockingIOError:
                free = False
            finally:
                os.close(probe)
            synced.append((os.readlink(f"/proc/self/fd/{fd}"), free))
            real(fd)

        monkeypatch.setattr(fsync, "_datasync", datasync)
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        event, media = make_event(event_id="ev-sync-0001")
        ingest(store, event, media)
        assert synced and synced[-1] == (os.path.realpath(wal), True), synced
        synced.clear()
        with db.begin_write(store.engine) as conn:  # the plain transaction syncs as it ends
            conn.exec_driver_sql("UPDATE devices SET revoked = revoked")
        assert [p for p, _ in synced] == [os.path.realpath(wal)]
    finally:
        store.close()


def test_writer_lock_runs_before_waiting_only_when_another_writer_has_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Ingest waits for its evidence sync before queueing behind another process's transaction (not
    inside its own, where every other writer would wait too); with the lock free it goes straight in."""
    import fcntl
    import threading

    path = str(tmp_path / "hub.db.writer-lock")
    lock, calls = db.WriterLock(path), []
    with lock.hold(lambda: calls.append("waited")):
        pass
    assert calls == []
    other = os.open(path, os.O_RDWR)  # another process's writer: its own open file, its own flock
    fcntl.flock(other, fcntl.LOCK_EX)
    release = threading.Timer(0.3, fcntl.flock, (other, fcntl.LOCK_UN))
    release.start()
    try:
        with lock.hold(lambda: calls.append("waited")):
            calls.append("holding")
    finally:
        release.join()
        os.close(other)
    assert calls == ["waited", "holding"]
    lock.close()


def test_a_new_wal_file_gets_its_directory_synced_once(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Once all connections close, SQLite removes the WAL; the next write makes a new one, whose
    directory entry must reach the disk as well (the first one's did; this is another file)."""
    from hub.app import open_store
    from hub.settings import HubSettings

    store = open_store(HubSettings(data_dir=tmp_path / "hub"))
    try:
        home = os.path.realpath(os.path.dirname(store.engine.url.database))
        real_fsync, dirs = os.fsync, []

        def fsync(fd: int) -> None:
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                dirs.append(os.readlink(f"/proc/self/fd/{fd}"))
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        for n in range(3):
            event, media = make_event(event_id=f"ev-wal-{n}", media_tag=str(n))
            ingest(store, event, media)
        wal_syncs_before = dirs.count(home)
        store.engine.dispose()  # every connection closed: SQLite checkpoints and removes the WAL
        assert not os.path.exists(f"{store.engine.url.database}-wal")
        event, media = make_event(event_id="ev-wal-3", media_tag="3")
        ingest(store, event, media)
        assert dirs.count(home) == wal_syncs_before + 1, dirs
    finally:
        store.close()
