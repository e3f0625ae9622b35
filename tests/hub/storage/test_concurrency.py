"""Four hub worker processes ingest the same stream of duplicates at once: one case per problem.

Every worker gets every edge event (so each event id arrives 4 times) plus its own re-detections of
the same problems (new event ids, new problem ids, jittered boxes; a second camera that sees some of
them on the ground). PostgreSQL serialises deciders through advisory locks; SQLite through its single
writer. Either way: no duplicate case, no duplicate event, every event counted exactly once.

And readers beside a writer (threads): API reads never wait for an open write transaction.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from hub.storage import db, migrations, schema
from hub.storage.store import Store
from protocol.messages import GroundPoint, ProblemEvent
from tests.hub.hubfactory import T0, ingest, make_event

WORKERS = 4
PROBLEMS = 12
REPEATS = 6


def _place(p: int) -> dict[str, Any]:
    """Problem p: its own zone on cam-1; even problems also have a ground point that cam-2 sees."""
    ground = GroundPoint(crs="local:site", x=100.0 * p, y=0.0) if p % 2 == 0 else None
    return {"zone": f"z{p}", "ground": ground}


def _stream(worker: int | None) -> list[tuple[ProblemEvent, dict[str, bytes]]]:
    """The shared stream (worker None) or one worker's own re-detections."""
    out = []
    tag = "shared" if worker is None else f"w{worker}"
    for p in range(PROBLEMS):
        place = _place(p)
        for r in range(REPEATS):
            jitter = 0.01 * (r % 3)
            out.append(make_event(
                event_id=f"{tag}-p{p}-r{r}-evt", problem_id=f"{tag}-prob-{p}-{r // 2}", zone=place["zone"],
                box=(0.1 + jitter, 0.1, 0.3 + jitter, 0.3), at=T0 + timedelta(seconds=10 * r), ground=place["ground"],
                media_tag=f"{tag}{p}{r}",
            ))
            if place["ground"] is not None and r == 0:  # another camera, another zone, same spot on the ground
                g = place["ground"]
                out.append(make_event(
                    event_id=f"{tag}-p{p}-cam2-evt", problem_id=f"{tag}-cam2-{p}", camera_id="cam-2",
                    device_id="box-2", zone="other", box=(0.05 * p, 0.6, 0.05 * p + 0.04, 0.7), at=T0,
                    ground=GroundPoint(crs=g.crs, x=g.x + 3.0, y=g.y + 2.0), media_tag=f"{tag}{p}c2",
                ))
    return out


def _worker(url: str, data_dir: str, worker: int, barrier: Any, results: Any) -> None:
    from hub.app import open_store
    from hub.settings import HubSettings

    store = open_store(HubSettings(db_url=url, data_dir=Path(data_dir)))
    events = _stream(None) + _stream(worker)
    random.Random(worker).shuffle(events)
    barrier.wait(60)
    out = []
    for seq, (event, media) in enumerate(events):
        r = store.ingest_event(event, media, manifest=b"m", signature=b"s", seq=seq)
        out.append((event.event_id, r.duplicate, r.case_id))
    store.close()
    results.put(out)


@pytest.mark.timeout(180)
def test_four_workers_make_no_duplicate_case(db_url: str | None, tmp_path: Path) -> None:
    url = db_url or f"sqlite:///{tmp_path / 'hub' / 'hub.db'}"
    (tmp_path / "hub").mkdir()
    migrations.migrate(db.make_engine(url))  # as `cityeye hub migrate` would, before the workers start
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, str(tmp_path / "hub"), w, barrier, results))
             for w in range(WORKERS)]
    for p in procs:
        p.start()
    outputs = [results.get(timeout=170) for _ in procs]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0

    rows = [row for out in outputs for row in out]
    by_problem: dict[str, set[str]] = {}
    for event_id, _, case_id in rows:  # "<tag>-p<N>-..." -> problem N, whichever camera saw it
        by_problem.setdefault(event_id.split("-")[1], set()).add(case_id)
    assert len(by_problem) == PROBLEMS
    assert all(len(ids) == 1 for ids in by_problem.values()), by_problem  # one case per problem
    fresh = Counter(event_id for event_id, dup, _ in rows if not dup)
    assert set(fresh.values()) == {1}  # each event stored by exactly one worker

    engine = db.make_engine(url)
    with engine.connect() as conn:
        n_cases = conn.execute(select(func.count()).select_from(schema.cases)).scalar_one()
        counts = dict(conn.execute(select(schema.cases.c.case_id, schema.cases.c.event_count)).all())
        n_events = conn.execute(select(func.count()).select_from(schema.events)).scalar_one()
    engine.dispose()
    assert n_cases == PROBLEMS
    per_problem = REPEATS * (WORKERS + 1)
    expected = {by_problem[f"p{p}"].pop(): per_problem + (WORKERS + 1 if p % 2 == 0 else 0) for p in range(PROBLEMS)}
    assert counts == expected
    assert n_events == len(fresh)


@pytest.mark.timeout(60)
def test_api_reads_do_not_wait_for_an_open_write(store: Store, client: Any, tokens: dict[str, dict[str, str]]) -> None:
    """While a write transaction is open (as during an ingest burst), API reads answer at once with the
    last committed data; writers still wait for it (SQLite: before they read anything), then succeed."""
    event, media = make_event(event_id="ev-committed")
    case_id = ingest(store, event, media).case_id
    c = schema.cases.c
    this_case = c.case_id == case_id
    inside, release = threading.Event(), threading.Event()
    started = threading.Event()  # the second writer's body runs: on SQLite only once it holds the write lock

    def held(conn: db.Connection) -> None:
        conn.execute(update(schema.cases).where(this_case).values(description="uncommitted"))
        inside.set()
        assert release.wait(30)

    def read_then_write() -> None:  # as migrate does: db.begin_write without Store.write's writer queue
        with db.begin_write(store.engine) as conn:
            started.set()
            n = conn.execute(select(c.event_count).where(this_case)).scalar_one()
            conn.execute(update(schema.cases).where(this_case).values(description="second", event_count=n + 1))

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(store.write, held)
        assert inside.wait(10)
        try:
            t0 = time.monotonic()
            detail = client.get(f"/cases/{case_id}", headers=tokens["reader"])
            listed = client.get("/cases", headers=tokens["reader"])
            read_s = time.monotonic() - t0
            assert read_s < 2.0, f"reads took {read_s:.2f} s beside an open write"
            queued = pool.submit(store.write, lambda conn: conn.execute(update(schema.cases).where(this_case)
                                                                        .values(unit="sanitation")))
            direct = pool.submit(read_then_write)
            time.sleep(0.5)
            assert not queued.done() and not direct.done()
            assert store.is_postgres or not started.is_set()  # PostgreSQL: it waits on the row lock instead
        finally:
            release.set()
        for future in (first, queued, direct):
            future.result(timeout=30)
    assert detail.status_code == 200 and listed.status_code == 200, (detail.text, listed.text)
    assert detail.json()["description"] is None and [i["case_id"] for i in listed.json()["items"]] == [case_id]
    with store.engine.connect() as conn:
        row = conn.execute(select(c.description, c.event_count, c.unit).where(this_case)).one()
    assert tuple(row) == ("second", 2, "sanitation")
