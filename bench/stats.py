"""/stats at a district's scale: the time `hub.cases.queries.statistics_for` takes over a 30-day range.

    .venv/bin/python bench/stats.py [--cases 100000] [--pg postgresql://postgres@127.0.0.1:5432/test]

Fills a fresh store (SQLite in a temp dir; with --pg also a fresh schema of that PostgreSQL database,
dropped afterwards) with --cases cases over the last 30 days, 70 classes, 1,800 cameras and 12 units,
each case with 3 events carrying a ~1 KB payload as ingest stores them, in every status a case passes
through (PostgreSQL is then vacuumed, as autovacuum would). Then it times the whole statistics call
(median of --rounds) and each of its parts, and prints what SQLite's planner does for the event and case
counts: they should come from the covering indexes of schema step 4, not from the tables, whose rows
(event payloads, manifests) are far larger.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hub.cases import queries
from hub.storage import db, migrations, schema

STATUSES = ("pending_review", "void", "filed", "dispatched", "handled", "closed")
CHUNK = 20_000
BUREAU_TZ = ZoneInfo("Asia/Shanghai")  # per-day counts group by the bureau's calendar day


def fill(engine: db.Engine, cases: int, now: datetime) -> None:
    rng = random.Random(0)
    payload = {"note": "x" * 900}
    for start in range(0, cases, CHUNK):
        case_rows, event_rows = [], []
        for i in range(start, min(cases, start + CHUNK)):
            created = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
            status = rng.choice(STATUSES)
            case_rows.append(_case_row(i, created, status))
            event_rows += [_event_row(i, k, created, payload) for k in range(3)]
        with db.begin_write(engine) as conn:
            conn.execute(schema.cases.insert(), case_rows)
            conn.execute(schema.events.insert(), event_rows)
        print(f"  filled {min(cases, start + CHUNK)} of {cases} cases", file=sys.stderr)


def _case_row(i: int, created: datetime, status: str) -> dict[str, Any]:
    judged = status not in ("pending_review", "void")
    handled = status in ("handled", "closed")
    return dict(case_id=f"C{i:09d}", class_id=f"class_{i % 70}", status=status, source="edge",
                camera_id=f"cam{i % 1800}", zone="z", first_seen=created, last_seen=created, event_count=3,
                recurrence_count=0, created_at=created, updated_at=created, unit=f"unit{i % 12}",
                filed_at=created + timedelta(minutes=20) if judged else None,
                handled_at=created + timedelta(hours=3) if handled else None, handled_on_time=i % 5 != 0,
                closed_at=created + timedelta(hours=5) if status == "closed" else None)


def _event_row(i: int, k: int, created: datetime, payload: dict[str, str]) -> dict[str, Any]:
    return dict(device_id=f"box{i % 1800}", event_id=f"ev{i}-{k}", seq=i * 3 + k, problem_id=f"p{i}",
                camera_id=f"cam{i % 1800}", class_id=f"class_{i % 70}", state="present", source="edge",
                observed_at=created + timedelta(seconds=30 * k), received_at=created, payload=payload,
                manifest=b"m" * 500, signature=b"s" * 64, case_id=f"C{i:09d}")


def timed(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def plans(engine: db.Engine, since: datetime, until: datetime) -> list[str]:
    """How the event and case counts are read: an index (good) or the table."""
    if engine.dialect.name != "sqlite":
        return []
    out = []
    with engine.connect() as conn:
        for name, table, col in (("events per class", "events", "observed_at"), ("cases per class", "cases",
                                                                                 "created_at")):
            sql = f"EXPLAIN QUERY PLAN SELECT class_id, count(*) FROM {table} WHERE {col} >= ? AND {col} < ? GROUP BY 1"
            t = db.bind_time(conn)
            detail = "; ".join(r[3] for r in conn.exec_driver_sql(sql, (t(since), t(until))))
            out.append(f"  plan, {name}: {detail}")
    return out


def run(label: str, engine: db.Engine, cases: int, rounds: int) -> float:
    now = db.utcnow()
    migrations.migrate(engine)
    print(f"{label}: filling {cases} cases and {3 * cases} events ...", file=sys.stderr)
    t0 = time.perf_counter()
    fill(engine, cases, now)
    print(f"{label}: filled in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if engine.dialect.name == "postgresql":  # what autovacuum does to a live table: index-only scans need it
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE cases")
            conn.exec_driver_sql("VACUUM ANALYZE events")
    since, until = now - timedelta(days=30), now + timedelta(seconds=1)
    with engine.connect() as conn:
        whole = timed(lambda: queries.statistics_for(conn, since, until, tz=BUREAU_TZ), rounds)
        parts = {
            "per day": lambda: queries._per_day(conn, since, until, BUREAU_TZ),
            "median time to close": lambda: queries._median_close(conn, since, until),
            "per unit": lambda: queries._per_unit(conn, since, until),
            "per camera": lambda: queries._per_camera(conn, since, until, 50),
        }
        times = {name: timed(fn, rounds) for name, fn in parts.items()}
    counts = whole - sum(times.values())
    print(f"{label}: /stats over 30 days, {cases} cases, {3 * cases} events: {whole:.0f} ms (median of {rounds})")
    print("  " + "  ".join(f"{k} {v:.0f}" for k, v in {"per class": counts, **times}.items()) + " (ms)")
    for line in plans(engine, since, until):
        print(line)
    return whole


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000, help="cases over the last 30 days (3 events each)")
    parser.add_argument("--rounds", type=int, default=3, help="timed calls; the median is printed")
    parser.add_argument("--pg", help="also run on this PostgreSQL database (a fresh schema, dropped after)")
    args = parser.parse_args()
    if args.cases < 1 or args.rounds < 1:
        parser.error("--cases and --rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="cityeye-bench-stats-") as tmp:
        engine = db.make_engine(db.sqlite_url(Path(tmp)))
        sqlite_ms = run("SQLite", engine, args.cases, args.rounds)
        engine.dispose()
    if args.pg:
        pg_ms = run_pg(args.pg, args.cases, args.rounds)
        print(f"ratio PostgreSQL/SQLite: {pg_ms / sqlite_ms:.2f}")
    return 0


def run_pg(url: str, cases: int, rounds: int) -> float:
    schema = f"bench_stats_{random.randrange(1 << 30)}"
    admin = db.make_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = db.make_engine(f"{url}?options=-csearch_path%3D{schema}")
    try:
        return run("PostgreSQL", engine, cases, rounds)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
