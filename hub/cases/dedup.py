"""Dedup: observations of one problem at one place become one case.

An observation joins a case of the same class when, first, the edge already tied its problem instance
(device, camera, problem_id) to a case that is still live; else when it is at the same place: same
camera and zone with an overlapping box seen within the class's time window, or, with a ground point,
within the class's distance of a case from any camera; or, for a report that has a street address but no
place (or a case that has none), the same normalised address within the class's time window (a case with no
point is never matched by distance). Otherwise it opens a case, linked to the last
closed case at that place if there is one (a recurrence).

The matching rules are pure functions; the queries take a Connection inside the caller's transaction.
A transaction that handles a burst of observations passes a `Burst`: the live case of every problem in
the burst is fetched in one query up front, and repeats are counted in memory and written once per
case at the end (`flush`), while every later observation in the burst still sees them.
Concurrency: the caller takes `lock_keys()` (PostgreSQL advisory transaction locks, sorted) before it
queries, so two workers can never both decide "no case yet" for one place. Ground points lock a 3x3
block of grid cells at least twice the match radius wide, so any two points that could match share a cell.
"""

from __future__ import annotations

import functools
import math
import re
import secrets
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, bindparam, literal_column, or_, select
from sqlalchemy.engine import Connection, Dialect

from hub.cases import plates
from hub.cases.lifecycle import DEDUP_STATUSES, RECURRENCE_STATUSES, CaseStatus
from hub.cases.transitions import AuditLog, DeadlineRule, mark_cleared, record_open
from hub.storage import db, schema
from protocol.messages import GroundPoint, NormBox, ProblemState

EARTH_RADIUS_M = 6_371_008.8
M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class DedupPolicy:
    """How close two observations of a class must be to count as the same problem."""

    radius_m: float = 15.0  # ground distance, any camera
    window_s: float = 6 * 3600.0  # same-camera box match only against cases seen this recently
    min_iou: float = 0.3
    min_overlap: float = 0.5  # intersection over the smaller box: a car partly occluded still matches


@dataclass(frozen=True)
class Observation:
    """One report of a problem from any intake (edge camera, IoT sensor, person), ready for dedup."""

    class_id: str
    state: ProblemState
    observed_at: datetime
    first_seen: datetime
    source: str  # edge, sensor, manual
    camera_id: str | None = None
    zone: str | None = None
    box: NormBox | None = None
    ground: GroundPoint | None = None
    problem_key: tuple[str, str, str] | None = None  # (device, camera, problem_id) from the edge
    description: str | None = None
    plate: str | None = None  # the vehicle's plate as stored (no dot), when the edge read it
    plate_colour: str | None = None
    plate_score: float | None = None
    address: str | None = None  # the street address the reporter gave (Open311 address_string/address_id)

    @property
    def address_key(self) -> str | None:
        return address_key(self.address)


@dataclass
class CaseRow:
    case_id: str
    status: str
    class_id: str
    camera_id: str | None
    zone: str | None
    box: NormBox | None
    ground: GroundPoint | None
    last_seen: datetime
    recurrence_count: int = 0
    extra: dict[str, object] = field(default_factory=dict)
    plate: str | None = None
    address_key: str | None = None


_NOT_ADDRESS = re.compile(r"[\W_]+")


def address_key(address: str | None) -> str | None:
    """An address as dedup compares it: width and case folded (NFKC), spaces and punctuation dropped, so
    "中山路 12号" and "中山路12号", "1 Main St." and "1 main st" are one address. None: no address."""
    if not address:
        return None
    key = _NOT_ADDRESS.sub("", unicodedata.normalize("NFKC", address).casefold())
    return key[:500] or None


# ---- pure matching ---------------------------------------------------------------------------------


def overlap_ratio(a: NormBox, b: NormBox) -> float:
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    smaller = min((a.x2 - a.x1) * (a.y2 - a.y1), (b.x2 - b.x1) * (b.y2 - b.y1))
    return (ix * iy) / smaller if smaller > 0 else 0.0


def boxes_match(a: NormBox, b: NormBox, policy: DedupPolicy) -> bool:
    return a.iou(b) >= policy.min_iou or overlap_ratio(a, b) >= policy.min_overlap


def ground_distance_m(a: GroundPoint, b: GroundPoint) -> float | None:
    """Metres between two ground points, or None when their frames are not comparable."""
    if a.crs != b.crs:
        return None
    if a.crs == "wgs84":
        lon1, lat1, lon2, lat2 = map(math.radians, (a.x, a.y, b.x, b.y))
        h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
        return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
    return math.hypot(a.x - b.x, a.y - b.y)


def same_place(obs: Observation, case: CaseRow, policy: DedupPolicy, *, windowed: bool) -> bool:
    """Same camera and zone with overlapping boxes (recently), or near on the ground. Plates decide first
    where both were read: two different plates are two vehicles however the boxes overlap, and the same
    plate in the same camera's zone is the same vehicle even where its box moved."""
    if plates.conflict(obs.plate, case.plate):
        return False
    if plates.same_vehicle(obs.plate, case.plate) and obs.camera_id and case.camera_id == obs.camera_id \
            and case.zone == obs.zone:
        return not windowed or (obs.observed_at - case.last_seen).total_seconds() <= policy.window_s
    if obs.camera_id and obs.box and case.camera_id == obs.camera_id and case.zone == obs.zone and case.box:
        recent = not windowed or (obs.observed_at - case.last_seen).total_seconds() <= policy.window_s
        if recent and boxes_match(obs.box, case.box, policy):
            return True
    if obs.ground and case.ground:
        dist = ground_distance_m(obs.ground, case.ground)
        return dist is not None and dist <= policy.radius_m
    if obs.address_key and obs.address_key == case.address_key:  # one of them has no point: by address
        return not windowed or (obs.observed_at - case.last_seen).total_seconds() <= policy.window_s
    return False


def choose_case(
    obs: Observation, candidates: Iterable[CaseRow], policy: DedupPolicy, *, windowed: bool = True
) -> CaseRow | None:
    """The best matching case: same camera first, then the nearest on the ground, then the latest."""

    def rank(case: CaseRow) -> tuple[int, float, float]:
        same_cam = 0 if case.camera_id == obs.camera_id else 1
        dist = ground_distance_m(obs.ground, case.ground) if obs.ground and case.ground else None
        return same_cam, dist if dist is not None else math.inf, -case.last_seen.timestamp()

    matches = [c for c in candidates if same_place(obs, c, policy, windowed=windowed)]
    return min(matches, key=rank) if matches else None


def _ground_metres(g: GroundPoint) -> tuple[float, float]:
    if g.crs == "wgs84":
        return g.x * M_PER_DEG * math.cos(math.radians(g.y)), g.y * M_PER_DEG
    return g.x, g.y


def lock_keys(obs: Observation, policy: DedupPolicy) -> list[str]:
    """Advisory-lock keys covering every case this observation could match or create, sorted."""
    keys = []
    if obs.camera_id:
        keys.append(f"cam|{obs.class_id}|{obs.camera_id}|{obs.zone}")
    if obs.ground:
        cell = max(2.0 * policy.radius_m, 1.0)
        mx, my = _ground_metres(obs.ground)
        cx, cy = math.floor(mx / cell), math.floor(my / cell)
        keys += [f"geo|{obs.class_id}|{obs.ground.crs}|{cx + i}|{cy + j}" for i in (-1, 0, 1) for j in (-1, 0, 1)]
    if obs.address_key:
        keys.append(f"addr|{obs.class_id}|{obs.address_key}")
    return sorted(keys)


def new_case_id(now: datetime) -> str:
    return f"C{now:%Y%m%d}-{secrets.token_hex(4).upper()}"


# ---- queries ---------------------------------------------------------------------------------------
# The hot path runs these for every event: built once, so only parameters change per call.

_DEDUP = sorted(s.value for s in DEDUP_STATUSES)
_OLD = sorted(s.value for s in RECURRENCE_STATUSES)


def _status_in(statuses: Iterable[str]) -> ColumnElement[bool]:
    """`status IN ('a', 'b')` with the (internal, constant) values in the SQL text: an expanding bound
    list would be re-rendered on every execution and could not be a prepared statement."""
    return schema.cases.c.status.in_([literal_column(f"'{s}'") for s in sorted(statuses)])


# The columns CaseRow reads: the others (eight timestamps among them) would only add result processing per row.
_CASE_COLUMNS = [schema.cases.c[name] for name in (
    "case_id", "status", "class_id", "camera_id", "zone", "box", "ground_crs", "ground_x", "ground_y", "last_seen",
    "recurrence_count", "plate", "address_key")]


def _problem_case(device: object, camera: object, problem: object) -> Select[Any]:
    e = schema.events
    return (select(*_CASE_COLUMNS).join(e, e.c.case_id == schema.cases.c.case_id)
            .where(e.c.device_id == device, e.c.camera_id == camera, e.c.problem_id == problem, _status_in(_DEDUP))
            .order_by(e.c.id.desc()).limit(1))


_PROBLEM_CASE = _problem_case(bindparam("b_device"), bindparam("b_camera"), bindparam("b_problem"))
# The latest closed case of a plate (same class): a plate seen again after its case closed links to it.
_PLATE_CASE = (select(*_CASE_COLUMNS).where(schema.cases.c.plate == bindparam("b_plate"),
                                            schema.cases.c.class_id == bindparam("b_class"), _status_in(_OLD))
               .order_by(schema.cases.c.created_at.desc()).limit(1))


@functools.lru_cache(maxsize=64)
def _candidates_query(statuses: frozenset[str], by_camera: bool, zone_is_none: bool, by_ground: bool,
                      by_address: bool = False) -> Select[Any]:
    """Cases of a class in `statuses` on the same camera and zone and/or within a ground box, latest first:
    one statement per shape, so only the parameters change per call.

    The class is tested inside each branch of the OR, not once outside it: so SQLite searches each branch
    in its own index (ix_cases_dedup_camera, ix_cases_dedup_ground) and unites the rows (MULTI-INDEX OR),
    where `class_id = ? AND (...)` makes it walk ix_cases_class_status over every case of the class.
    PostgreSQL ORs two bitmap index scans either way."""
    c = schema.cases
    near = []
    if by_camera:
        zone = c.c.zone.is_(None) if zone_is_none else c.c.zone == bindparam("b_zone")
        near.append(and_(c.c.class_id == bindparam("b_class"), c.c.camera_id == bindparam("b_camera"), zone))
    if by_ground:
        near.append(and_(c.c.class_id == bindparam("b_class"), c.c.ground_crs == bindparam("b_crs"),
                         c.c.ground_x.between(bindparam("b_x_lo"), bindparam("b_x_hi")),
                         c.c.ground_y.between(bindparam("b_y_lo"), bindparam("b_y_hi"))))
    if by_address:
        near.append(and_(c.c.class_id == bindparam("b_class"), c.c.address_key == bindparam("b_address")))
    return (select(*_CASE_COLUMNS).where(_status_in(statuses), or_(*near))
            .order_by(c.c.last_seen.desc()).limit(200))


# Writes: driver SQL on tuples of driver values (db.Batch; times through db.bind_time, JSON db.bind_json).
_ATTACH = db.batch_update(schema.cases, ("event_count", "updated_at", "last_seen", "box"), "case_id",
                          add=("event_count",))
_SET_GROUND = db.batch_update(schema.cases, ("ground_crs", "ground_x", "ground_y", "lat", "lon"), "case_id")
_INSERT_CASE = db.batch_insert(schema.cases, (
    "case_id", "class_id", "status", "source", "camera_id", "zone", "box", "ground_crs", "ground_x", "ground_y", "lat",
    "lon", "description", "first_seen", "last_seen", "event_count", "recurrence_of", "recurrence_count",
    "deadline_at", "created_at", "updated_at", "plate", "plate_colour", "plate_score", "address", "address_key"))
_SET_PLATE = db.batch_update(schema.cases, ("plate", "plate_colour", "plate_score"), "case_id")


def row_to_case(row: Row[Any]) -> CaseRow:
    m = row._mapping
    ground = None
    if m["ground_crs"] is not None:
        ground = GroundPoint(crs=m["ground_crs"], x=m["ground_x"], y=m["ground_y"])
    return CaseRow(
        case_id=m["case_id"],
        status=m["status"],
        class_id=m["class_id"],
        camera_id=m["camera_id"],
        zone=m["zone"],
        box=NormBox(**m["box"]) if m["box"] else None,
        ground=ground,
        last_seen=m["last_seen"],
        recurrence_count=m["recurrence_count"],
        plate=m["plate"],
        address_key=m["address_key"],
    )


def _driver_case(row: Sequence[Any], at: int = 0) -> CaseRow:
    """row_to_case on the driver's values (exec_driver_sql) of _CASE_COLUMNS, from row[at] on: what the
    column types would convert, without SQLAlchemy's result processing."""
    case_id, status, class_id, camera_id, zone, box, crs, x, y, last_seen, recurrence_count, plate, address = \
        row[at:at + 13]
    if isinstance(box, str):  # SQLite: the JSON text (PostgreSQL: psycopg has decoded it)
        box = None if box in ("null", "{}") else NormBox.model_validate_json(box)
    elif box:
        box = NormBox(**box)
    return CaseRow(
        case_id=case_id, status=status, class_id=class_id, camera_id=camera_id, zone=zone,
        box=box or None, ground=None if crs is None else GroundPoint(crs=crs, x=x, y=y),
        last_seen=db.result_time(last_seen), recurrence_count=recurrence_count, plate=plate, address_key=address,
    )


@functools.lru_cache(maxsize=128)
def _driver_sql(stmt: Select[Any], dialect: Dialect) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
    """A Core statement as driver SQL for `dialect`: its text, the names of its positional parameters (None:
    named), and the values it binds itself (e.g. LIMIT)."""
    compiled = stmt.compile(dialect=dialect)
    return compiled.string, tuple(compiled.positiontup) if compiled.positiontup else None, dict(compiled.params)


def find_problem_case(conn: Connection, obs: Observation) -> CaseRow | None:
    """The live case the edge already tied this problem instance to, if any."""
    if obs.problem_key is None:
        return None
    device, camera, problem = obs.problem_key
    row = conn.execute(_PROBLEM_CASE, {"b_device": device, "b_camera": camera, "b_problem": problem}).first()
    return row_to_case(row) if row else None


def candidates(conn: Connection, obs: Observation, policy: DedupPolicy, statuses: Iterable[str]) -> list[CaseRow]:
    """Cases of the class in `statuses` that could be at the observation's place."""
    query = candidates_query(obs, policy, statuses)
    if query is None:
        return []
    sql, names, values = _driver_sql(query[0], conn.dialect)
    values = {**values, **query[1]}
    rows = conn.exec_driver_sql(sql, values if names is None else tuple(values[n] for n in names)).fetchall()
    return [_driver_case(r) for r in rows]


def candidates_query(obs: Observation, policy: DedupPolicy, statuses: Iterable[str]
                     ) -> tuple[Select[Any], dict[str, object]] | None:
    """The statement and parameters of `candidates` (None: the observation has no place to match)."""
    by_camera = bool(obs.camera_id and obs.box)
    by_address = obs.address_key is not None
    if not by_camera and obs.ground is None and not by_address:
        return None
    params: dict[str, object] = {"b_class": obs.class_id, "b_camera": obs.camera_id, "b_zone": obs.zone,
                                 "b_address": obs.address_key}
    if obs.ground:
        margin = policy.radius_m * 1.5
        if obs.ground.crs == "wgs84":
            dy = margin / M_PER_DEG
            dx = dy / max(0.01, math.cos(math.radians(obs.ground.y)))
        else:
            dx = dy = margin
        params.update(b_crs=obs.ground.crs, b_x_lo=obs.ground.x - dx, b_x_hi=obs.ground.x + dx,
                      b_y_lo=obs.ground.y - dy, b_y_hi=obs.ground.y + dy)
    return _candidates_query(frozenset(statuses), by_camera, by_camera and obs.zone is None,
                             obs.ground is not None, by_address), params


@dataclass
class Burst:
    """Dedup state of one transaction over many observations (see the module docstring)."""

    now: datetime
    by_problem: dict[tuple[str, str, str], CaseRow]  # the live case of each problem key, kept current
    touched: dict[str, CaseRow] = field(default_factory=dict)  # cases changed in memory, current state
    repeats: dict[str, int] = field(default_factory=dict)  # case_id -> events to add to event_count

    def assign(self, obs: Observation, case: CaseRow) -> None:
        """The observation went to `case` (its event row is inserted with the case_id, after the dedup)."""
        if obs.problem_key is not None:
            self.by_problem[obs.problem_key] = case


# Each key's newest event whose case is live (a correlated subquery per key, which walks the problem index
# backwards and stops at the first hit), joined to that case's row: one statement (and one snapshot).
_LATEST_LIVE = (
    "SELECT l.n, {columns} FROM (SELECT k.n, (SELECT e.case_id FROM events e JOIN cases ON cases.case_id = e.case_id "
    "WHERE e.device_id = k.d AND e.camera_id = k.c AND e.problem_id = k.p AND cases.status IN ({statuses}) "
    "ORDER BY e.id DESC LIMIT 1) AS case_id FROM {keys}) AS l JOIN cases AS live ON live.case_id = l.case_id"
).replace("{statuses}", ", ".join(f"'{s}'" for s in _DEDUP)).replace(
    "{columns}", ", ".join(f"live.{c.name}" for c in _CASE_COLUMNS))
# PostgreSQL: three arrays, one short statement it can prepare (n counts from 1).
_LATEST_LIVE_PG = _LATEST_LIVE.format(
    keys="unnest(CAST(%s AS text[]), CAST(%s AS text[]), CAST(%s AS text[])) WITH ORDINALITY AS k(d, c, p, n)")


@functools.lru_cache(maxsize=128)
def _latest_live_sqlite(n: int) -> str:
    """_LATEST_LIVE for n keys, given as (n, d, c, p) ... (n counts from 0)."""
    return f"WITH k(n, d, c, p) AS (VALUES {', '.join(['(?, ?, ?, ?)'] * n)}) " + _LATEST_LIVE.format(keys="k")


def start_burst(conn: Connection, observations: Iterable[Observation], now: datetime) -> Burst:
    """Fetch the live case of every problem key among `observations` in one statement (per 100 keys)."""
    keys = sorted({o.problem_key for o in observations if o.problem_key is not None})
    found: dict[tuple[str, str, str], CaseRow] = {}
    cases: dict[str, CaseRow] = {}  # one CaseRow per case, however many keys lead to it
    postgres = db.is_postgres(conn)
    for i in range(0, len(keys), 100):
        chunk = keys[i:i + 100]
        if postgres:
            result = conn.exec_driver_sql(_LATEST_LIVE_PG, ([k[0] for k in chunk], [k[1] for k in chunk],
                                                            [k[2] for k in chunk]))
            base = 1
        else:
            result = conn.exec_driver_sql(_latest_live_sqlite(len(chunk)),
                                          tuple(v for n, key in enumerate(chunk) for v in (n, *key)))
            base = 0
        for row in result.fetchall():
            case = cases.get(row[1])
            if case is None:
                case = cases[row[1]] = _driver_case(row, 1)
            found[chunk[row[0] - base]] = case
    return Burst(now=now, by_problem=found)


def flush(conn: Connection, burst: Burst) -> None:
    """Write what the burst kept in memory: each case's repeats (case order)."""
    if burst.repeats:
        t = db.bind_time(conn)
        now = t(burst.now)
        _ATTACH.run(conn, [
            (n, now, t(case.last_seen), _box_json(case.box), case_id)
            for case_id, n in sorted(burst.repeats.items()) for case in (burst.touched[case_id],)
        ])
        burst.repeats = {}


def _box_json(box: NormBox | None) -> str:
    """The box column's value (JSON text; no box: JSON null, as the JSON type stores None)."""
    return db.bind_json(box.model_dump() if box else None)


def _ground_columns(ground: GroundPoint | None) -> tuple[str | None, float | None, float | None, float | None,
                                                         float | None]:
    """The cases columns of a ground point: (ground_crs, ground_x, ground_y, lat, lon); lat/lon when WGS 84."""
    if ground is None:
        return None, None, None, None, None
    wgs = ground.crs == "wgs84"
    return ground.crs, ground.x, ground.y, ground.y if wgs else None, ground.x if wgs else None


def find_live_case(conn: Connection, obs: Observation, policy: DedupPolicy, burst: Burst | None = None
                   ) -> CaseRow | None:
    if burst is None or obs.problem_key is None:
        found = find_problem_case(conn, obs)
    else:
        found = burst.by_problem.get(obs.problem_key)
        found = burst.touched.get(found.case_id, found) if found else None
        if found is not None and found.status not in DEDUP_STATUSES:  # closed in this burst: ask the database
            # It holds none of the burst's events (they are inserted after the dedup), but each of those went
            # to a case that was closed before the problem's next event looked, and stays closed: so the
            # newest event of the problem with a live case is one stored before the burst.
            found = find_problem_case(conn, obs)
            found = burst.touched.get(found.case_id, found) if found else None
    if found is not None:
        return found
    open_cases = candidates(conn, obs, policy, _DEDUP)
    if burst is not None:
        open_cases = [burst.touched.get(c.case_id, c) for c in open_cases]
    # A voided false alarm only absorbs repeats on its own camera, never a neighbour's report.
    usable = [c for c in open_cases if c.status != CaseStatus.VOID or c.camera_id == obs.camera_id]
    return choose_case(obs, usable, policy)


def find_previous_case(conn: Connection, obs: Observation, policy: DedupPolicy, burst: Burst | None = None
                       ) -> CaseRow | None:
    """The latest closed case of the same plate (a repeat offender, wherever it was) or else at this
    place: a new case is its recurrence."""
    if obs.plate:
        row = conn.execute(_PLATE_CASE, {"b_plate": obs.plate, "b_class": obs.class_id}).first()
        if row is not None:
            case = row_to_case(row)
            return burst.touched.get(case.case_id, case) if burst is not None else case
    old = candidates(conn, obs, policy, _OLD)
    if burst is not None:
        old = [burst.touched.get(c.case_id, c) for c in old]
    matches = [c for c in old if same_place(obs, c, policy, windowed=False)]
    return max(matches, key=lambda c: c.last_seen) if matches else None


def insert_case(
    conn: Connection, obs: Observation, now: datetime, previous: CaseRow | None, deadline: datetime | None
) -> CaseRow:
    case_id = new_case_id(now)
    t = db.bind_time(conn)
    _INSERT_CASE.run(conn, [(
        case_id, obs.class_id, CaseStatus.PENDING_REVIEW.value, obs.source, obs.camera_id, obs.zone, _box_json(obs.box),
        *_ground_columns(obs.ground), obs.description, t(min(obs.first_seen, obs.observed_at)), t(obs.observed_at), 1,
        previous.case_id if previous else None, previous.recurrence_count + 1 if previous else 0,
        None if deadline is None else t(deadline), t(now), t(now), obs.plate, obs.plate_colour, obs.plate_score,
        obs.address, obs.address_key,
    )])
    return CaseRow(case_id=case_id, status=CaseStatus.PENDING_REVIEW.value, class_id=obs.class_id,
                   camera_id=obs.camera_id, zone=obs.zone, box=obs.box, ground=obs.ground, last_seen=obs.observed_at,
                   recurrence_count=previous.recurrence_count + 1 if previous else 0, plate=obs.plate,
                   address_key=obs.address_key)


def attach(conn: Connection, case: CaseRow, obs: Observation, now: datetime, burst: Burst | None = None) -> None:
    """Count a repeat on its case: bump the count, extend last-seen, keep the freshest box. With a
    burst, `case` is updated in memory and the row written by `flush`."""
    newer = obs.observed_at > case.last_seen
    box = obs.box if newer and obs.box is not None and obs.camera_id == case.camera_id else case.box
    last_seen = max(obs.observed_at, case.last_seen)
    if burst is None:
        t = db.bind_time(conn)
        _ATTACH.run(conn, [(1, t(now), t(last_seen), _box_json(box), case.case_id)])
    else:
        case.box, case.last_seen = box, last_seen
        burst.touched[case.case_id] = case
        burst.repeats[case.case_id] = burst.repeats.get(case.case_id, 0) + 1
    if case.ground is None and obs.ground is not None:
        case.ground = obs.ground
        _SET_GROUND.run(conn, [(*_ground_columns(obs.ground), case.case_id)])
    if case.plate is None and obs.plate is not None:  # a later frame read what the first could not
        case.plate = obs.plate
        _SET_PLATE.run(conn, [(obs.plate, obs.plate_colour, obs.plate_score, case.case_id)])


# ---- the decision ----------------------------------------------------------------------------------


def decide(conn: Connection, obs: Observation, now: datetime, reporter: str, burst: Burst, audit: AuditLog, *,
           policy: DedupPolicy, deadline: DeadlineRule) -> tuple[CaseRow | None, bool]:
    """The case for one observation (None: a `cleared` with no case) and whether it opened it.
    Transition and case-change rows go to `audit`, which the caller writes. The caller holds
    lock_keys(obs, policy)."""
    case = find_live_case(conn, obs, policy, burst)
    if obs.state == ProblemState.CLEARED:
        if case is None:
            return None, False
        attach(conn, case, obs, now, burst)
        mark_cleared(conn, case, obs, now, reporter, audit, deadline)
        return case, False
    if case is not None:
        attach(conn, case, obs, now, burst)
        audit.changes.append((case.case_id, "case.updated", case.status))
        return case, False
    previous = find_previous_case(conn, obs, policy, burst)
    case = insert_case(conn, obs, now, previous, deadline(obs.class_id, CaseStatus.PENDING_REVIEW, now))
    record_open(audit, case, obs, reporter, previous)
    return case, True
