"""Events per second through the hub store: idempotent insert + dedup + case creation.

    .venv/bin/python bench/cases.py [--events 2000] [--pg postgresql://postgres@127.0.0.1:5432/test]

One run prints: SQLite (1 process), PostgreSQL with 1 worker process and with 4, and the ratios, each
storing one event per transaction (`Store.ingest_event`) and in bursts (`Store.ingest_events`, as hub
ingest does with what arrived together; --batch). The stream is a street's: 40 cameras, 200 places,
problems reported again and again (most events join an open case), every event with a 2 KB snapshot
written content-addressed. With 4 workers each process ingests its own events of the same places, so
deciders contend on the same dedup locks. Both modes must end with the same number of cases.
PostgreSQL runs in a fresh schema of the given database, dropped afterwards.

Then the dedup decision for a NEW problem (its live case, then the closed one it recurs at) with
--dedup-cases cases of its class already stored across a city. The candidate queries search indexes on
the camera and on the ground point, not the whole class: a report with only a ground point stays flat as
cases pile up; a camera's grows with the cases stored per camera and zone (about 100 closed ones each at
50000 here), since the recurrence query reads all of them there (up to 200).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import random
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from protocol.messages import MediaKind, MediaRef, NormBox, ProblemEvent

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
CAMERAS = 40
PLACES_PER_CAMERA = 5


def make_stream(worker: int, n: int) -> list[tuple[ProblemEvent, dict[str, bytes]]]:
    """`n` events of worker `worker`: 200 places, each problem re-reported ~10 times."""
    out = []
    for i in range(n):
        place = (i * 7 + worker) % (CAMERAS * PLACES_PER_CAMERA)
        episode = i // (CAMERAS * PLACES_PER_CAMERA * 10)  # a new problem instance every ~10 reports
        cam, slot = divmod(place, PLACES_PER_CAMERA)
        x = 0.05 + 0.18 * slot
        data = b"\xff\xd8" + secrets.token_bytes(2048) + b"\xff\xd9"
        ref = MediaRef(name="snapshot.jpg", kind=MediaKind.SNAPSHOT, content_type="image/jpeg", size=len(data),
                       sha256=hashlib.sha256(data).hexdigest())
        event = ProblemEvent(
            event_id=f"w{worker}-e{i:07d}", problem_id=f"w{worker}-c{cam}-s{slot}-{episode}", device_id=f"box-{cam}",
            camera_id=f"cam-{cam}", class_id="illegal_car_parking" if slot % 2 else "exposed_garbage",
            state="opened" if i < CAMERAS * PLACES_PER_CAMERA else "updated", zone=f"z{slot}",
            box=NormBox(x1=x, y1=0.4, x2=x + 0.1, y2=0.6), score=0.8,
            first_seen=T0, observed_at=T0 + timedelta(seconds=i), dwell_s=60.0, media=[ref],
        )
        out.append((event, {"snapshot.jpg": data}))
    return out


def _worker(url: str, data_dir: str, worker: int, n: int, fsync: bool, batch: int, barrier: Any,
            results: Any) -> None:
    from hub.app import open_store
    from hub.ingest.burst import IngestItem
    from hub.settings import HubSettings

    store = open_store(HubSettings(db_url=url, data_dir=Path(data_dir), evidence_fsync=fsync))
    stream = make_stream(worker, n)
    barrier.wait()
    start = time.perf_counter()
    created = 0
    if batch == 1:
        for seq, (event, media) in enumerate(stream):
            created += store.ingest_event(event, media, manifest=b"m", signature=b"s", seq=seq).created
    else:
        for i in range(0, len(stream), batch):
            items = [IngestItem(e, m, b"m", b"s", i + k) for k, (e, m) in enumerate(stream[i:i + batch])]
            for r in store.ingest_events(items):
                if isinstance(r, Exception):
                    raise r
                created += r.created
    results.put((time.perf_counter() - start, created))
    store.close()


def run(url: str, data_dir: Path, workers: int, n: int, fsync: bool, batch: int = 1) -> tuple[float, int]:
    """Events/s over all workers (wall clock from a common start), and cases created."""
    from hub.storage import db, migrations

    engine = db.make_engine(url)
    migrations.migrate(engine)
    engine.dispose()
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(workers + 1), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, str(data_dir), w, n, fsync, batch, barrier, results))
             for w in range(workers)]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    outs = [results.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    return workers * n / wall, sum(c for _, c in outs)


def dedup_ms(url: str, existing: int, probes: int = 400) -> dict[str, float]:
    """Milliseconds per new problem to decide it has no live case and find its previous one, with
    `existing` cases of its class (mostly closed) from 80 cameras in a city 20 km wide: for a camera's
    report with a ground point, and for a report with a ground point only (a sensor's, a person's)."""
    from hub.cases import classes, dedup
    from hub.storage import db, migrations, schema
    from protocol.messages import GroundPoint, ProblemState

    engine = db.make_engine(url)
    migrations.migrate(engine)
    rnd, now, class_id = random.Random(1), datetime.now(UTC), "exposed_garbage"

    def spot() -> dict[str, Any]:
        return {"camera_id": f"cam-{rnd.randrange(80)}", "zone": f"z{rnd.randrange(5)}", "ground_crs": "wgs84",
                "ground_x": 116.3 + 0.25 * rnd.random(), "ground_y": 39.8 + 0.18 * rnd.random()}

    rows = [{"case_id": f"B{i:08d}", "class_id": class_id, "source": "edge", "box": None,
             "status": rnd.choice(["closed"] * 8 + ["void", "pending_review"]), "first_seen": now,
             "last_seen": now, "created_at": now, "updated_at": now, **spot()} for i in range(existing)]
    with db.begin_write(engine) as conn:
        for k in range(0, len(rows), 5000):
            conn.execute(schema.cases.insert(), rows[k:k + 5000])
        if db.is_postgres(conn):
            conn.exec_driver_sql("ANALYZE cases")
    policy = classes.dedup_policy(class_id)
    places = [spot() for _ in range(probes)]
    out = {}
    for kind, camera in (("camera + ground", True), ("ground only", False)):
        probe = [dedup.Observation(
            class_id=class_id, state=ProblemState.OPENED, observed_at=now, first_seen=now, source="edge",
            camera_id=p["camera_id"] if camera else None, zone=p["zone"] if camera else None,
            box=NormBox(x1=0.1, y1=0.1, x2=0.3, y2=0.3) if camera else None,
            ground=GroundPoint(crs="wgs84", x=p["ground_x"], y=p["ground_y"])) for p in places]
        with engine.connect() as conn:
            start = time.perf_counter()
            for obs in probe:
                if dedup.find_live_case(conn, obs, policy) is None:
                    dedup.find_previous_case(conn, obs, policy)
            out[kind] = 1000 * (time.perf_counter() - start) / probes
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events per worker process")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test", help="PostgreSQL database")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--no-fsync", action="store_true", help="evidence_fsync=False (not power-cut safe)")
    parser.add_argument("--batch", type=int, default=32, help="events per burst in the burst runs")
    parser.add_argument("--dedup-cases", type=int, default=50_000, help="cases of one class for the dedup figure")
    args = parser.parse_args(argv)

    import psycopg

    schema = f"bench_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(args.pg, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL at {args.pg} is not reachable ({exc}); SQLite only", file=sys.stderr)
        admin = None
    fsync = not args.no_fsync
    table: dict[str, dict[int, tuple[float, int]]] = {}  # store -> batch -> (events/s, cases)
    dedup: dict[str, dict[str, float]] = {}  # store -> report kind -> ms per new problem
    with tempfile.TemporaryDirectory() as tmp:
        if args.dedup_cases:
            dedup["SQLite"] = dedup_ms(f"sqlite:///{Path(tmp) / 'dedup.db'}", args.dedup_cases)
            if admin is not None:
                name = f"{schema}_dedup"
                admin.execute(f"CREATE SCHEMA {name}")
                try:
                    dedup["PostgreSQL"] = dedup_ms(f"{args.pg}?options=-csearch_path%3D{name}", args.dedup_cases)
                finally:
                    admin.execute(f"DROP SCHEMA {name} CASCADE")
        for batch in (1, args.batch):
            name = f"sqlite_{batch}"
            url = f"sqlite:///{Path(tmp) / name / 'hub.db'}"
            (Path(tmp) / name).mkdir()
            table.setdefault("SQLite, 1 process", {})[batch] = run(url, Path(tmp) / name, 1, args.events, fsync, batch)
            if admin is None:
                continue
            for workers in (1, args.workers):
                name = f"{schema}_{workers}_{batch}"
                admin.execute(f"CREATE SCHEMA {name}")
                try:
                    url = f"{args.pg}?options=-csearch_path%3D{name}"
                    table.setdefault(f"PostgreSQL, {workers} worker(s)", {})[batch] = run(
                        url, Path(tmp) / name, workers, args.events, fsync, batch)
                finally:
                    admin.execute(f"DROP SCHEMA {name} CASCADE")
    if admin is not None:
        admin.close()
    print(f"evidence fsync: {'on' if fsync else 'off'}; {args.events} events per worker; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'store':28} {'1 event/tx':>12} {f'{args.batch}/tx burst':>14} {'burst/1':>8} {'cases':>7}")
    for name, by_batch in table.items():
        one, burst = by_batch[1], by_batch[args.batch]
        print(f"{name:28} {one[0]:12.0f} {burst[0]:14.0f} {burst[0] / one[0]:7.1f}x {burst[1]:7d}")
        assert one[1] == burst[1], f"{name}: {one[1]} cases one by one, {burst[1]} in bursts"
    if len(table) == 3:
        (_, sqlite), (_, pg1), (_, pgn) = table.items()
        for label, b in (("1 event/tx", 1), ("bursts", args.batch)):
            print(f"{label:>10}: PostgreSQL 1 worker / SQLite {pg1[b][0] / sqlite[b][0]:.2f}x; "
                  f"{args.workers} workers / 1 worker {pgn[b][0] / pg1[b][0]:.2f}x; "
                  f"{args.workers} workers / SQLite {pgn[b][0] / sqlite[b][0]:.2f}x")
    for name, by_kind in dedup.items():
        print(f"dedup of a new problem with {args.dedup_cases} cases of its class stored ({name}): "
              + ", ".join(f"{kind} {ms:.2f} ms" for kind, ms in by_kind.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
