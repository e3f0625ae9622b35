"""Read side of the hub: case lists and details, cameras, statistics, the change feed."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, select
from sqlalchemy.engine import Connection

from hub.cases import classes, contacts, plates
from hub.cases.lifecycle import TERMINAL_STATUSES, CaseStatus, Role, allowed_actions
from hub.storage import db, schema

SORTABLE = ("created_at", "updated_at", "last_seen", "first_seen", "event_count", "deadline_at")


@dataclass
class CaseFilter:
    status: list[CaseStatus] = field(default_factory=list)
    class_id: str | None = None
    camera_id: str | None = None
    unit: str | None = None
    source: str | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    bbox: tuple[float, float, float, float] | None = None  # min_lon, min_lat, max_lon, max_lat
    overdue: bool | None = None
    plate: plates.PlateQuery | None = None  # exact (a whole plate) or partial
    placed: bool | None = None  # False: cases with no position at all (an address only), True: the others


def case_conditions(f: CaseFilter, now: datetime) -> list[Any]:
    """The WHERE conditions on `cases` of a filter (the queue, the overdue sweep)."""
    c = schema.cases
    where: list[Any] = []
    if f.status:
        where.append(c.c.status.in_([s.value for s in f.status]))
    for col, value in ((c.c.class_id, f.class_id), (c.c.camera_id, f.camera_id), (c.c.unit, f.unit),
                       (c.c.source, f.source)):
        if value is not None:
            where.append(col == value)
    if f.since is not None:
        where.append(c.c.created_at >= f.since)
    if f.until is not None:
        where.append(c.c.created_at < f.until)
    if f.bbox is not None:
        where += [c.c.lon.between(f.bbox[0], f.bbox[2]), c.c.lat.between(f.bbox[1], f.bbox[3])]
    if f.plate is not None:
        where.append(plates.plate_condition(f.plate))
    if f.placed is not None:
        nowhere = and_(c.c.lat.is_(None), c.c.ground_crs.is_(None), c.c.camera_id.is_(None))
        where.append(~nowhere if f.placed else nowhere)
    if f.overdue is not None:
        late = and_(c.c.deadline_at.is_not(None), c.c.deadline_at < now,
                    c.c.status.not_in([s.value for s in TERMINAL_STATUSES]))
        where.append(late if f.overdue else ~late)
    return where


def case_out(m: Any, now: datetime, role: Role | None = None) -> dict[str, Any]:
    """A case row for the API; its plate and reporter's contacts as `role` may see them (masked without a role)."""
    row = dict(m)
    row["plate"] = plates.plate_out(m, role)
    if not contacts.may_see_contacts(role):
        row["description"] = contacts.hide_contacts(row["description"])
    row["class_name"] = classes.display_name(row["class_id"])
    row["ground"] = (
        {"crs": row["ground_crs"], "x": row["ground_x"], "y": row["ground_y"]} if row["ground_crs"] else None
    )
    row["overdue"] = bool(
        row["deadline_at"] and row["deadline_at"] < now and CaseStatus(row["status"]) not in TERMINAL_STATUSES
    )
    return row


def list_cases(conn: Connection, f: CaseFilter, *, sort: str, offset: int, limit: int, role: Role | None = None
               ) -> dict[str, Any]:
    c = schema.cases
    now = db.utcnow()
    where = case_conditions(f, now)
    total = conn.execute(select(func.count()).select_from(c).where(*where)).scalar_one()
    column = c.c[sort.lstrip("-")]
    order = column.desc() if sort.startswith("-") else column.asc()
    rows = conn.execute(select(c).where(*where).order_by(order, c.c.case_id).offset(offset).limit(limit))
    return {"total": total, "offset": offset, "limit": limit, "items": [case_out(r._mapping, now, role) for r in rows]}


def case_detail(conn: Connection, case_id: str, role: Role) -> dict[str, Any] | None:
    c, e, m, t = schema.cases, schema.events, schema.media, schema.transitions
    row = conn.execute(select(c).where(c.c.case_id == case_id)).first()
    if row is None:
        return None
    now = db.utcnow()
    out = case_out(row._mapping, now, role)
    evs = conn.execute(select(e).where(e.c.case_id == case_id).order_by(e.c.observed_at, e.c.id).limit(500)).all()
    media_rows = conn.execute(select(m).where(m.c.event_pk.in_([ev.id for ev in evs]))).all() if evs else []
    by_event: dict[int, list[dict[str, Any]]] = {}
    for mr in media_rows:
        by_event.setdefault(mr.event_pk, []).append(
            {"name": mr.name, "kind": mr.kind, "content_type": mr.content_type, "size": mr.size,
             "sha256": mr.sha256, "url": f"/evidence/{mr.sha256}"}
        )
    out["events"] = [
        {"device_id": ev.device_id, "event_id": ev.event_id, "source": ev.source, "state": ev.state,
         "camera_id": ev.camera_id, "observed_at": ev.observed_at, "received_at": ev.received_at,
         "signed": bool(ev.signature), "media": by_event.get(ev.id, [])}
        for ev in evs
    ]
    out["timeline"] = [dict(r._mapping) for r in conn.execute(select(t).where(t.c.case_id == case_id).order_by(t.c.id))]
    out["allowed_actions"] = allowed_actions(CaseStatus(out["status"]), role)
    out["media_fetches"] = media_fetches(conn, case_id)
    if out["plate"] is not None:
        read = plates.latest_read([ev.payload for ev in evs])
        if read:
            out["plate"].update(frames=read.get("frames"), attempts=read.get("attempts"))
        if row.plate:
            out["plate"]["cases_90d"] = plates.cases_with_plate(conn, row.plate, now)
    return out


def media_fetches(conn: Connection, case_id: str) -> list[dict[str, Any]]:
    """The photos Open311 clients linked to the case (media_url) and what became of each (hub.open311.media)."""
    f = schema.media_fetches
    rows = conn.execute(select(f.c.url, f.c.status, f.c.reason, f.c.sha256, f.c.created_at, f.c.done_at)
                        .where(f.c.case_id == case_id).order_by(f.c.id))
    return [dict(r._mapping) for r in rows]


def list_cameras(conn: Connection, offline_after_s: float) -> list[dict[str, Any]]:
    cutoff = db.utcnow() - timedelta(seconds=offline_after_s)
    rows = conn.execute(select(schema.cameras).order_by(schema.cameras.c.camera_id)).all()
    return [
        {**r._mapping, "reported_online": bool(r.online),
         "online": bool(r.online and r.last_seen and r.last_seen >= cutoff)}
        for r in rows
    ]


def list_devices(conn: Connection, offline_after_s: float) -> list[dict[str, Any]]:
    cutoff = db.utcnow() - timedelta(seconds=offline_after_s)
    cams: dict[str, list[str]] = {}
    cam = schema.cameras
    for r in conn.execute(select(cam.c.device_id, cam.c.camera_id).order_by(cam.c.camera_id)):
        cams.setdefault(r.device_id, []).append(r.camera_id)
    return [
        {**r._mapping, "online": bool(not r.revoked and r.last_seen and r.last_seen >= cutoff),
         "cameras": cams.get(r.device_id, [])}
        for r in conn.execute(select(schema.devices).order_by(schema.devices.c.device_id))
    ]


def statistics_for(conn: Connection, since: datetime, until: datetime, camera_limit: int = 50,
                   tz: tzinfo = UTC) -> dict[str, Any]:
    """Counts over [since, until); `per_day` groups by the calendar day in `tz` (the bureau's)."""
    c, e = schema.cases, schema.events
    ev_counts: dict[str, int] = dict(conn.execute(
        select(e.c.class_id, func.count()).where(e.c.observed_at >= since, e.c.observed_at < until)
        .group_by(e.c.class_id)
    ).all())
    case_rows = conn.execute(
        select(c.c.class_id, func.count(), func.count(c.c.filed_at),
               func.sum(case((c.c.status == CaseStatus.VOID.value, 1), else_=0)))
        .where(c.c.created_at >= since, c.c.created_at < until).group_by(c.c.class_id)
    ).all()
    per_class: dict[str, dict[str, Any]] = {cid: {"class_id": cid, "events": n, "cases": 0, "filed": 0, "void": 0}
                                            for cid, n in ev_counts.items()}
    for cid, n, filed, void in case_rows:
        entry = per_class.setdefault(cid, {"class_id": cid, "events": 0})
        entry.update(cases=n, filed=filed, void=int(void or 0))
    for entry in per_class.values():
        judged = entry["filed"] + entry["void"]
        entry["precision"] = entry["filed"] / judged if judged else None
    return {
        "per_class": sorted(per_class.values(), key=lambda x: x["class_id"]),
        "per_day": _per_day(conn, since, until, tz),
        "median_hours_to_close": _median_close(conn, since, until),
        "per_unit": _per_unit(conn, since, until),
        **_per_camera(conn, since, until, camera_limit),
    }


def _hour_start(value: Any) -> datetime:
    """An hour bucket from the database (a datetime on PostgreSQL, 'YYYY-MM-DD HH:00:00' on SQLite) in UTC."""
    start = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)


def _per_day(conn: Connection, since: datetime, until: datetime, tz: tzinfo) -> list[dict[str, Any]]:
    """Events and cases per day in `tz`: counted per UTC hour in SQL (still from the indexes), then each hour
    goes to its local day. Exact for zones whose offset is whole hours (China's +8 among them)."""
    c, e = schema.cases, schema.events
    days: dict[str, dict[str, Any]] = {}
    for table, col, key in ((e, e.c.observed_at, "events"), (c, c.c.created_at, "cases")):
        hour = func.date_trunc("hour", col) if db.is_postgres(conn) else func.strftime("%Y-%m-%d %H:00:00", col)
        for h, n in conn.execute(select(hour, func.count()).select_from(table)
                                 .where(col >= since, col < until).group_by(hour)):
            day = _hour_start(h).astimezone(tz).date().isoformat()
            days.setdefault(day, {"day": day, "events": 0, "cases": 0})[key] += n
    return [days[k] for k in sorted(days)]


def _median_close(conn: Connection, since: datetime, until: datetime) -> float | None:
    c = schema.cases
    rows = conn.execute(select(c.c.created_at, c.c.closed_at).where(
        c.c.closed_at.is_not(None), c.c.closed_at >= since, c.c.closed_at < until)).all()
    hours = [(closed - created).total_seconds() / 3600 for created, closed in rows]
    return statistics.median(hours) if hours else None


def _per_unit(conn: Connection, since: datetime, until: datetime) -> list[dict[str, Any]]:
    c = schema.cases
    on_time = func.sum(case((c.c.handled_on_time.is_(True), 1), else_=0))
    rows = conn.execute(
        select(c.c.unit, func.count(), on_time)
        .where(c.c.unit.is_not(None), c.c.handled_at.is_not(None), c.c.handled_at >= since, c.c.handled_at < until)
        .group_by(c.c.unit)
    ).all()
    return [{"unit": u, "handled": n, "on_time": int(ok or 0), "on_time_rate": int(ok or 0) / n if n else None}
            for u, n, ok in rows]


def _per_camera(conn: Connection, since: datetime, until: datetime, limit: int) -> dict[str, Any]:
    """Capture precision per edge camera, worst first: where tuning a camera saves reviewers the most work."""
    c = schema.cases
    where = (c.c.source == "edge", c.c.camera_id.is_not(None), c.c.created_at >= since, c.c.created_at < until)
    filed = func.count(c.c.filed_at)
    void = func.coalesce(func.sum(case((c.c.status == CaseStatus.VOID.value, 1), else_=0)), 0)
    precision = case((filed + void > 0, cast(filed, Float) / (filed + void)), else_=None)
    # Ties: more voids first (0 of 10 costs reviewers more than 0 of 1). count() over () counts the groups.
    rows = conn.execute(
        select(c.c.camera_id, func.count(), filed, void, func.count().over())
        .where(*where).group_by(c.c.camera_id)
        .order_by(precision.asc().nulls_last(), void.desc(), c.c.camera_id).limit(limit)
    ).all()
    worst = _most_voided_class(conn, where, [r[0] for r in rows])
    cameras = [_camera_row(cam, n, f, int(v), worst.get(cam)) for cam, n, f, v, _ in rows]
    return {"per_camera": cameras, "per_camera_total": rows[0][4] if rows else 0}


def _camera_row(camera_id: str, cases: int, filed: int, void: int, worst: tuple[str, int] | None) -> dict[str, Any]:
    return {"camera_id": camera_id, "cases": cases, "filed": filed, "void": void,
            "precision": filed / (filed + void) if filed + void else None,
            "most_voided_class": worst[0] if worst else None, "most_voided_class_voids": worst[1] if worst else 0}


def _most_voided_class(conn: Connection, where: tuple[Any, ...], cameras: list[str]) -> dict[str, tuple[str, int]]:
    """camera_id -> (class with the most voided cases, its void count); ties go to the first class id."""
    if not cameras:
        return {}
    c = schema.cases
    rows = conn.execute(
        select(c.c.camera_id, c.c.class_id, func.count())
        .where(*where, c.c.status == CaseStatus.VOID.value, c.c.camera_id.in_(cameras))
        .group_by(c.c.camera_id, c.c.class_id)
    ).all()
    worst: dict[str, tuple[str, int]] = {}
    for cam, cls, n in sorted(rows, key=lambda r: (r[0], -r[2], r[1])):
        worst.setdefault(cam, (cls, n))
    return worst


def changes_since(conn: Connection, after_id: int, limit: int = 100) -> list[dict[str, Any]]:
    ch = schema.case_changes
    rows = conn.execute(select(ch).where(ch.c.id > after_id).order_by(ch.c.id).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def last_change_id(conn: Connection) -> int:
    return conn.execute(select(func.coalesce(func.max(schema.case_changes.c.id), 0))).scalar_one()


def cases_by_status(conn: Connection) -> dict[str, int]:
    c = schema.cases
    return dict(conn.execute(select(c.c.status, func.count()).group_by(c.c.status)).all())

