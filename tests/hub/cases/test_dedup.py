"""Dedup of events into cases: same-camera repeats, cross-camera by ground distance, recurrence."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import Select, select
from sqlalchemy.engine import Connection

from hub.cases.dedup import (
    _DEDUP,
    _OLD,
    DedupPolicy,
    Observation,
    boxes_match,
    candidates_query,
    ground_distance_m,
    lock_keys,
)
from hub.storage import db, schema
from hub.storage.store import Store
from protocol.messages import GroundPoint, NormBox, ProblemState
from tests.hub.hubfactory import T0, ingest, make_event

HERE = GroundPoint(crs="wgs84", x=116.397128, y=39.916527)


def near(dx_m: float) -> GroundPoint:
    """A point `dx_m` metres north of HERE."""
    return GroundPoint(crs="wgs84", x=HERE.x, y=HERE.y + dx_m / 111_195.0)


def case_row(store: Store, case_id: str) -> dict:
    with store.engine.connect() as conn:
        return dict(conn.execute(select(schema.cases).where(schema.cases.c.case_id == case_id)).one()._mapping)


def close_case(store: Store, case_id: str) -> None:
    store.write(lambda conn: conn.execute(schema.cases.update().where(schema.cases.c.case_id == case_id)
                                          .values(status="closed")))


def test_pure_matching() -> None:
    a = NormBox(x1=0.1, y1=0.1, x2=0.3, y2=0.3)
    assert boxes_match(a, NormBox(x1=0.12, y1=0.1, x2=0.32, y2=0.3), DedupPolicy())
    assert boxes_match(a, NormBox(x1=0.15, y1=0.15, x2=0.25, y2=0.25), DedupPolicy())  # contained
    assert not boxes_match(a, NormBox(x1=0.5, y1=0.5, x2=0.7, y2=0.7), DedupPolicy())
    assert abs(ground_distance_m(HERE, near(10.0)) - 10.0) < 0.05  # type: ignore[operator]
    assert ground_distance_m(HERE, GroundPoint(crs="local:site1", x=0, y=0)) is None
    local = GroundPoint(crs="local:site1", x=3.0, y=4.0)
    assert ground_distance_m(local, GroundPoint(crs="local:site1", x=0, y=0)) == 5.0
    obs = Observation(class_id="illegal_car_parking", state=ProblemState.OPENED, observed_at=T0, first_seen=T0,
                      source="edge", camera_id="c", ground=HERE)
    assert len(lock_keys(obs, DedupPolicy(radius_m=10))) == 10 and lock_keys(obs, DedupPolicy()) == sorted(
        lock_keys(obs, DedupPolicy()))


def test_same_camera_repeats_make_one_case(store: Store) -> None:
    ids = set()
    for i in range(5):  # new problem ids each time (the edge lost its track), box jitters
        event, media = make_event(problem_id=f"prob-{i:04d}", box=(0.1 + i * 0.01, 0.1, 0.3 + i * 0.01, 0.3),
                                  at=T0 + timedelta(minutes=i))
        ids.add(ingest(store, event, media).case_id)
    assert len(ids) == 1
    row = case_row(store, next(iter(ids)))
    assert row["event_count"] == 5 and row["last_seen"] == T0 + timedelta(minutes=4)
    # another zone, a far box, another class or a stale case: separate cases
    other = [
        make_event(zone="np-2", problem_id="prob-bbb1"),
        make_event(box=(0.6, 0.6, 0.8, 0.8), problem_id="prob-bbb2"),
        make_event(class_id="exposed_garbage", problem_id="prob-bbb3"),
        make_event(at=T0 + timedelta(hours=24), problem_id="prob-bbb4"),
    ]
    assert len({ingest(store, e, m).case_id for e, m in other} | ids) == 5


def test_cross_camera_within_distance(store: Store) -> None:
    a, ma = make_event(camera_id="cam-a", ground=HERE)
    b, mb = make_event(camera_id="cam-b", box=(0.7, 0.7, 0.9, 0.9), ground=near(8.0), device_id="box-2")
    c, mc = make_event(camera_id="cam-c", ground=near(25.0), device_id="box-3")
    case_a = ingest(store, a, ma).case_id
    assert ingest(store, b, mb).case_id == case_a
    assert ingest(store, c, mc).case_id != case_a
    assert case_row(store, case_a)["event_count"] == 2  # type: ignore[arg-type]


def test_local_site_frames_compare_only_within_a_site(store: Store) -> None:
    p1 = GroundPoint(crs="local:yard", x=10.0, y=10.0)
    a, ma = make_event(camera_id="cam-a", ground=p1)
    b, mb = make_event(camera_id="cam-b", ground=GroundPoint(crs="local:yard", x=14.0, y=13.0))
    c, mc = make_event(camera_id="cam-c", ground=GroundPoint(crs="local:other", x=10.0, y=10.0))
    first = ingest(store, a, ma).case_id
    assert ingest(store, b, mb).case_id == first
    assert ingest(store, c, mc).case_id != first


def test_recurrence_after_close_links_cases(store: Store) -> None:
    e1, m1 = make_event(problem_id="prob-aaaa1")
    first = ingest(store, e1, m1).case_id
    close_case(store, first)  # type: ignore[arg-type]
    e2, m2 = make_event(problem_id="prob-aaaa2", at=T0 + timedelta(days=7))
    second = ingest(store, e2, m2)
    assert second.created and second.case_id != first
    row = case_row(store, second.case_id)  # type: ignore[arg-type]
    assert row["recurrence_of"] == first and row["recurrence_count"] == 1
    close_case(store, second.case_id)  # type: ignore[arg-type]
    e3, m3 = make_event(problem_id="prob-aaaa3", at=T0 + timedelta(days=14))
    third = case_row(store, ingest(store, e3, m3).case_id)  # type: ignore[arg-type]
    assert third["recurrence_of"] == second.case_id and third["recurrence_count"] == 2


def test_recurrence_is_the_latest_closed_case_at_the_place_past_newer_ones_elsewhere(store: Store) -> None:
    """The closed cases come latest first: newer closed cases elsewhere on the camera are walked past,
    and of several at the place the latest is taken."""
    at_place = []
    for day in (1, 2):
        e, m = make_event(problem_id=f"prob-here-{day}", at=T0 + timedelta(days=day))
        at_place.append(ingest(store, e, m).case_id)
        close_case(store, at_place[-1])  # type: ignore[arg-type]
    for k in range(6):  # newer, same camera and zone, other spots
        x = 0.4 + 0.08 * k
        e, m = make_event(problem_id=f"prob-else-{k}", box=(x, 0.6, x + 0.05, 0.7), at=T0 + timedelta(days=3 + k))
        close_case(store, ingest(store, e, m).case_id)  # type: ignore[arg-type]
    e, m = make_event(problem_id="prob-here-3", at=T0 + timedelta(days=20))
    row = case_row(store, ingest(store, e, m).case_id)  # type: ignore[arg-type]
    assert row["recurrence_of"] == at_place[1]


def test_cleared_without_case_is_kept_without_case(store: Store) -> None:
    e, m = make_event(state=ProblemState.CLEARED)
    result = ingest(store, e, m)
    assert not result.duplicate and result.case_id is None
    assert store.get_event(e.event_id) is not None


def _tricky_stream(seed: int) -> list[tuple[str, list]]:  # type: ignore[type-arg]
    """Phases of events: repeats (some re-sent), boxes that drift, a second camera on the ground,
    then (after the caller marks cases handled) `cleared` reports and the same problems back again."""
    import random

    rng = random.Random(seed)
    phases: list[tuple[str, list]] = []  # type: ignore[type-arg]
    creep = 0
    for phase, states in (("open", (ProblemState.OPENED, ProblemState.UPDATED)),
                          ("clear", (ProblemState.UPDATED, ProblemState.CLEARED, ProblemState.OPENED))):
        events = []
        for n in range(60):
            p = rng.randrange(6)
            ground = near(4.0 * p) if p % 2 == 0 else None
            cam2 = ground is not None and rng.random() < 0.3
            state = rng.choice(states)
            x = 0.1 * p + rng.choice((0.0, 0.01, 0.02))
            at = T0 + timedelta(seconds=30 * n + (0 if phase == "open" else 3600))
            events.append(make_event(
                event_id=f"{phase}-{n:04d}-evt", problem_id=f"prob-{phase}-{p}-{n // 25}", state=state,
                camera_id="cam-2" if cam2 else "cam-1", device_id="box-2" if cam2 else "box-1",
                zone="other" if cam2 else f"z{p}", box=(x, 0.1, x + 0.08, 0.3), at=at, ground=ground,
                media_tag=f"{phase}{n}"))
            if rng.random() < 0.15:
                events.append(events[rng.randrange(len(events))])  # a resend, maybe within the burst
            if rng.random() < 0.3:  # re-detected under new track ids, creeping: matches only the latest box
                creep += 1
                x = 0.05 + 0.03 * (creep % 25)
                events.append(make_event(
                    event_id=f"{phase}-{n:04d}-crp", problem_id=f"prob-creep-{creep}", zone="zc",
                    box=(x, 0.5, x + 0.08, 0.7), at=at + timedelta(seconds=rng.randrange(-40, 40)),
                    media_tag=f"{phase}{n}c"))
        phases.append((phase, events))
    return phases


def _outcome(store: Store) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """Cases keyed by their first event id (case ids are random), and each event's case in those terms."""
    with store.engine.connect() as conn:
        links = conn.execute(select(schema.events.c.event_id, schema.events.c.case_id)).all()
        cases = {r.case_id: r for r in conn.execute(select(schema.cases))}
        changes = sorted(conn.execute(select(schema.case_changes.c.kind, schema.case_changes.c.status)).all())
    label = {}
    for event_id, case_id in sorted(links):
        if case_id is not None:
            label.setdefault(case_id, event_id)
    table = {label[cid]: (r.status, r.event_count, r.last_seen, r.box, r.ground_x, r.ground_y, r.recurrence_count,
                          label.get(r.recurrence_of), r.cleared_at) for cid, r in cases.items()}
    return table, {"links": {e: label.get(c) for e, c in links}, "changes": changes}


def test_bursts_dedup_exactly_like_one_event_at_a_time(store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Many events of one problem, resends, closes and comebacks inside one transaction: the outcome
    is the same as storing the events one by one, whatever the burst size."""
    from hub.app import open_store
    from hub.ingest.burst import IngestItem
    from hub.settings import HubSettings

    reference = open_store(HubSettings(data_dir=tmp_path / "reference"))
    try:
        for phase, events in _tricky_stream(5):
            if phase == "clear":  # the city handled every open case in between
                for s in (store, reference):
                    s.write(lambda conn: conn.execute(schema.cases.update()
                                                      .where(schema.cases.c.status == "pending_review")
                                                      .values(status="handled")))
            for event, media in events:
                ingest(reference, event, media)
            sizes = iter([1, 7, 32, 3, 64] * 10)
            i = 0
            while i < len(events):
                n = next(sizes)
                results = store.ingest_events([IngestItem(e, m, b'{"m":1}', b"s" * 64, 1) for e, m in events[i:i + n]])
                assert not any(isinstance(r, Exception) for r in results)
                i += n
        assert _outcome(store) == _outcome(reference)
        cases = _outcome(store)[0].values()
        assert {"verified", "pending_review"} <= {c[0] for c in cases}  # auto-verified, and new cases
        assert any(c[6] > 0 for c in cases) and any(c[1] > 5 for c in cases)  # recurrences, many repeats
    finally:
        reference.close()


def _plan(conn: Connection, stmt: Select, params: dict[str, object]) -> str:  # type: ignore[type-arg]
    """EXPLAIN QUERY PLAN (SQLite) or EXPLAIN (PostgreSQL) of `stmt` with `params`, as text."""
    compiled = stmt.compile(conn)
    values = {**compiled.params, **params}
    if db.is_postgres(conn):
        rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), values)
    else:
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled),
                                    tuple(values[name] for name in compiled.positiontup or ()))
    return "\n".join(str(row[-1]) for row in rows)


def _seed_cases(conn: Connection, n: int) -> None:
    """`n` cases of one class across a city, most of them closed, on 50 cameras."""
    rnd = random.Random(7)
    now = db.utcnow()
    conn.execute(schema.cases.insert(), [{
        "case_id": f"S{i:07d}", "class_id": "exposed_garbage", "source": "edge",
        "status": rnd.choice(["closed"] * 8 + ["void", "pending_review"]),
        "camera_id": f"cam-{rnd.randrange(50)}", "zone": f"z{rnd.randrange(4)}", "box": None,
        "ground_crs": "wgs84", "ground_x": 116.3 + 0.2 * rnd.random(), "ground_y": 39.8 + 0.2 * rnd.random(),
        "first_seen": now, "last_seen": now, "created_at": now, "updated_at": now,
    } for i in range(n)])
    if db.is_postgres(conn):
        conn.exec_driver_sql("ANALYZE cases")


# SQLite: each branch of the OR is a search on all the columns it can seek (y is checked in the index).
CAMERA_SEARCH = "SEARCH cases USING INDEX ix_cases_dedup_camera (class_id=? AND camera_id=? AND zone=? AND status=?)"
GROUND_SEARCH = ("SEARCH cases USING INDEX ix_cases_dedup_ground "
                 "(class_id=? AND ground_crs=? AND status=? AND ground_x>? AND ground_x<?)")


@pytest.mark.parametrize("shape", ["camera+ground", "ground", "camera", "camera without zone"])
def test_candidate_queries_search_the_dedup_indexes(store: Store, shape: str) -> None:
    """Dedup of a new problem looks at the cases near it, not at every case of its class."""
    store.write(lambda conn: _seed_cases(conn, 3000))
    camera = shape != "ground"
    obs = Observation(class_id="exposed_garbage", state=ProblemState.OPENED, observed_at=T0, first_seen=T0,
                      source="edge", camera_id="cam-7" if camera else None, zone=None if "zone" in shape else "z1",
                      box=NormBox(x1=0.1, y1=0.1, x2=0.3, y2=0.3) if camera else None,
                      ground=HERE if "ground" in shape else None)
    for statuses in (_DEDUP, _OLD):
        query = candidates_query(obs, DedupPolicy(), statuses)
        assert query is not None
        with store.engine.connect() as conn:
            plan = _plan(conn, *query)
        if store.is_postgres:  # the planner weighs statistics: no sequential scan, the ground index for a point
            assert "Seq Scan" not in plan and ("ground" not in shape or "ix_cases_dedup_ground" in plan), plan
            continue
        searches = [line for line in plan.splitlines() if line.startswith(("SEARCH", "SCAN"))]
        expected = {"camera+ground": [CAMERA_SEARCH, GROUND_SEARCH], "ground": [GROUND_SEARCH]}
        assert searches == expected.get(shape, [CAMERA_SEARCH]), plan
        assert ("MULTI-INDEX OR" in plan) == (shape == "camera+ground"), plan



def test_case_rows_from_driver_values_match_the_core_types(store: Store) -> None:
    """The hot path reads cases as driver values (exec_driver_sql): the CaseRow must be the one the Core
    column types give, on either database, with and without a box (JSON null, SQL NULL) and a ground point."""
    from sqlalchemy import null

    from hub.cases.dedup import _CASE_COLUMNS, _driver_case, candidates, row_to_case, start_burst

    ids = [ingest(store, *make_event(event_id="ev-driver1", problem_id="prob-drv1", ground=HERE)).case_id,
           ingest(store, *make_event(event_id="ev-driver2", problem_id="prob-drv2", zone="z2",
                                     ground=GroundPoint(crs="local:site1", x=3.5, y=-4.25))).case_id,
           ingest(store, *make_event(event_id="ev-driver3", problem_id="prob-drv3", zone="z3")).case_id]
    for case_id, box in zip(ids[1:], [None, null()], strict=True):
        store.write(lambda conn, c=case_id, b=box: conn.execute(
            schema.cases.update().where(schema.cases.c.case_id == c).values(box=b)))
    with store.engine.connect() as conn:
        core = {r.case_id: row_to_case(r) for r in conn.execute(select(*_CASE_COLUMNS))}
        raw = conn.exec_driver_sql("SELECT " + ", ".join(c.name for c in _CASE_COLUMNS) + " FROM cases").all()
        assert {r[0]: _driver_case(r) for r in raw} == core and set(ids) <= set(core)
        assert core[ids[0]].box is not None and core[ids[1]].box is None and core[ids[2]].box is None
        assert core[ids[1]].ground is not None and core[ids[2]].ground is None
        assert core[ids[0]].last_seen == T0
        obs = Observation(class_id="illegal_car_parking", state=ProblemState.OPENED, observed_at=T0, first_seen=T0,
                          source="edge", camera_id="cam-1", zone="np-1", box=core[ids[0]].box, ground=HERE,
                          problem_key=("box-1", "cam-1", "prob-drv1"))
        assert candidates(conn, obs, DedupPolicy(), _DEDUP) == [core[ids[0]]]
        assert start_burst(conn, [obs], T0).by_problem == {obs.problem_key: core[ids[0]]}
