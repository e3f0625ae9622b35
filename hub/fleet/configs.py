"""Each camera's config on the hub: versions, what its agent runs, and an audit of who changed what.

Version 0 (or whatever the box reports first) is imported from the agent's own report, so the page
starts from what the box really runs. Each save on the page is the next version, `pending` until the
ingest link sends it (`sent`), then `accepted` or `rejected` by the agent with its validation error.
Only the newest version of a camera is ever pushed; a rejected one is not pushed again. An agent that
comes back reports what it runs, and a newer version it missed goes out at once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.engine import Connection

from hub.fleet import pushqueue
from hub.fleet.diff import config_changes
from hub.storage import db, schema
from protocol.push import PushResult

IMPORTED = "imported"
PENDING, SENT, ACCEPTED, REJECTED = pushqueue.PENDING, pushqueue.SENT, pushqueue.ACCEPTED, pushqueue.REJECTED


class ConfigConflict(ValueError):
    """The page edited an older version than the newest: someone else saved meanwhile."""

    def __init__(self, message: str, latest: int) -> None:
        super().__init__(message)
        self.latest = latest  # the newest version, which the page should reload


class UnknownCamera(LookupError):
    """No agent has reported this camera yet: there is no config to start from."""


@dataclass(frozen=True)
class DuePush:
    device_id: str
    camera_id: str
    version: int
    body: dict[str, Any]
    created_at: datetime
    created_by: str


def _audit(conn: Connection, *, actor: str, device_id: str, camera_id: str, version: int, action: str,
           detail: str | None = None, changes: list[dict[str, Any]] | None = None) -> None:
    conn.execute(schema.config_audit.insert().values(at=db.utcnow(), actor=actor[:128], device_id=device_id,
                                                  camera_id=camera_id, version=version, action=action,
                                                  detail=detail, changes=changes))


def _latest(conn: Connection, camera_id: str) -> Any:
    c = schema.camera_configs
    return conn.execute(select(c).where(c.c.camera_id == camera_id).order_by(c.c.version.desc()).limit(1)).first()


# ---- reads -------------------------------------------------------------------------------------

def camera_config(conn: Connection, camera_id: str) -> dict[str, Any]:
    """The newest version with its state, what the agent runs, and the last versions (for the page)."""
    latest = _latest(conn, camera_id)
    if latest is None:
        raise UnknownCamera(f"camera {camera_id!r} has not reported a config yet (is its agent connected?)")
    state = conn.execute(select(schema.camera_config_state).where(
        schema.camera_config_state.c.camera_id == camera_id)).first()
    c = schema.camera_configs
    history = conn.execute(select(c.c.version, c.c.status, c.c.created_at, c.c.created_by, c.c.error)
                           .where(c.c.camera_id == camera_id).order_by(c.c.version.desc()).limit(20)).all()
    return {
        "camera_id": camera_id, "device_id": latest.device_id,
        "running_version": state.running_version if state else None,
        "managed_by": state.managed_by if state else "local",
        "reported_at": state.reported_at if state else None,
        "latest": _version_out(latest),
        "versions": [dict(r._mapping) for r in history],
    }


def _version_out(row: Any) -> dict[str, Any]:
    return {"version": row.version, "body": row.body, "status": row.status, "origin": row.origin,
            "created_at": row.created_at, "created_by": row.created_by, "sent_at": row.sent_at,
            "answered_at": row.answered_at, "error": row.error, "issues": row.issues or []}


def config_summaries(conn: Connection) -> dict[str, dict[str, Any]]:
    """camera id -> running and newest version, the newest one's status, who manages it (fleet page)."""
    c, s = schema.camera_configs, schema.camera_config_state
    newest = pushqueue.newest_versions(c, c.c.camera_id)
    rows = conn.execute(select(c.c.camera_id, c.c.version, c.c.status, s.c.running_version, s.c.managed_by)
                        .join(newest, and_(newest.c.camera_id == c.c.camera_id, newest.c.version == c.c.version))
                        .outerjoin(s, s.c.camera_id == c.c.camera_id)).all()
    return {r.camera_id: {"latest_version": r.version, "latest_status": r.status,
                          "running_version": r.running_version, "managed_by": r.managed_by or "local"}
            for r in rows}


def audit(conn: Connection, camera_id: str, limit: int = 100) -> list[dict[str, Any]]:
    a = schema.config_audit
    rows = conn.execute(select(a).where(a.c.camera_id == camera_id).order_by(a.c.id.desc()).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def calibrations(conn: Connection) -> dict[str, dict[str, Any]]:
    """camera id -> the calibration of its newest config (the map places cameras with it)."""
    c = schema.camera_configs
    rows = conn.execute(pushqueue.newest_rows(c, c.c.camera_id)).all()
    return {r.camera_id: {**r.body["calibration"], "device_id": r.device_id}
            for r in rows if (r.body or {}).get("calibration")}


# ---- the page saves ------------------------------------------------------------------------------

def save(store: Any, camera_id: str, body: dict[str, Any], *, actor: str, base_version: int) -> dict[str, Any]:
    """Store `body` as the camera's next version (pending: the ingest link pushes it) and audit it."""

    def tx(conn: Connection) -> dict[str, Any]:
        latest = _latest(conn, camera_id)
        if latest is None:
            raise UnknownCamera(f"camera {camera_id!r} has not reported a config yet")
        if latest.version != base_version:
            raise ConfigConflict(f"camera {camera_id}: version {latest.version} was saved after version "
                                 f"{base_version} you edited; reload and apply your change again", latest.version)
        changes = config_changes(latest.body, body)
        version = latest.version + 1
        conn.execute(schema.camera_configs.insert().values(
            camera_id=camera_id, version=version, device_id=latest.device_id, body=body, origin="hub",
            status=PENDING, created_at=db.utcnow(), created_by=actor[:128]))
        _audit(conn, actor=actor, device_id=latest.device_id, camera_id=camera_id, version=version, action="saved",
               changes=changes)
        return {"version": version, "changes": changes}

    return store.write(tx)


# ---- the ingest link -------------------------------------------------------------------------------

def record_result(store: Any, result: PushResult) -> None:
    """An agent's answer to a push, or its report of what it runs (on connect)."""
    if result.kind.value != "camera_config":
        return

    def tx(conn: Connection) -> None:
        if result.report:
            _on_report(conn, result)
        else:
            _on_answer(conn, result)

    store.write(tx)


def _set_state(conn: Connection, result: PushResult, running: int) -> None:
    s = schema.camera_config_state
    values = {"device_id": result.device_id, "running_version": running, "managed_by": result.managed_by.value,
              "reported_at": db.utcnow()}
    if conn.execute(update(s).where(s.c.camera_id == result.target).values(**values)).rowcount == 0:
        conn.execute(s.insert().values(camera_id=result.target, **values))


def _on_report(conn: Connection, result: PushResult) -> None:
    c = schema.camera_configs
    _set_state(conn, result, result.version)
    latest = _latest(conn, result.target)
    actor = f"device:{result.device_id}"
    if latest is None:
        if result.current is None:
            return
        conn.execute(c.insert().values(camera_id=result.target, version=result.version, device_id=result.device_id,
                                       body=result.current, origin="device", status=IMPORTED,
                                       created_at=db.utcnow(), created_by=actor))
        _audit(conn, actor=actor, device_id=result.device_id, camera_id=result.target, version=result.version,
               action=IMPORTED, detail=f"the config the box runs ({result.managed_by.value})")
        return
    if (latest.origin == "device" and latest.version == result.version and result.current is not None
            and latest.body != result.current):  # the box's own YAML changed (it runs no hub version yet)
        conn.execute(update(c).where(c.c.camera_id == result.target, c.c.version == latest.version)
                     .values(body=result.current, created_at=db.utcnow()))
        _audit(conn, actor=actor, device_id=result.device_id, camera_id=result.target, version=result.version,
               action=IMPORTED, detail="the box's own config changed",
               changes=config_changes(latest.body, result.current))
        return
    running = conn.execute(select(c).where(c.c.camera_id == result.target, c.c.version == result.version)).first()
    if running is not None and running.status in (PENDING, SENT):  # applied while its answer was lost
        _mark(conn, result, ACCEPTED)
    if latest.version > result.version and latest.status == SENT:
        # the box missed it (offline, or the answer was lost): send it again now
        conn.execute(update(c).where(c.c.camera_id == result.target, c.c.version == latest.version)
                     .values(status=PENDING, sent_at=None))


def _on_answer(conn: Connection, result: PushResult) -> None:
    status = ACCEPTED if result.accepted else REJECTED
    if _mark(conn, result, status) and result.accepted:
        _set_state(conn, result, result.version)


def _mark(conn: Connection, result: PushResult, status: str) -> bool:
    c = schema.camera_configs
    done = conn.execute(update(c).where(c.c.camera_id == result.target, c.c.version == result.version,
                                        c.c.status.in_((PENDING, SENT)))
                        .values(status=status, answered_at=db.utcnow(), error=result.error,
                                issues=[i.model_dump() for i in result.issues] or None)).rowcount
    if done:
        _audit(conn, actor=f"device:{result.device_id}", device_id=result.device_id, camera_id=result.target,
               version=result.version, action=status, detail=result.error)
    return bool(done)


def due_pushes(conn: Connection, devices: Collection[str], resend_after_s: float) -> list[DuePush]:
    """The newest version of each camera of `devices` that their agents have not answered: pending, or
    sent longer than `resend_after_s` ago."""
    c = schema.camera_configs
    rows = pushqueue.due_rows(conn, c, c.c.camera_id, devices, resend_after_s)
    return [DuePush(r.device_id, r.camera_id, r.version, r.body, r.created_at, r.created_by) for r in rows]


def mark_sent(store: Any, pushes: list[DuePush]) -> None:
    if not pushes:
        return

    def tx(conn: Connection) -> None:
        c = schema.camera_configs
        now = db.utcnow()
        for p in pushes:
            first = conn.execute(update(c).where(c.c.camera_id == p.camera_id, c.c.version == p.version,
                                                 c.c.status == PENDING).values(status=SENT, sent_at=now)).rowcount
            if not first:
                conn.execute(update(c).where(c.c.camera_id == p.camera_id, c.c.version == p.version)
                             .values(sent_at=now))
            else:
                _audit(conn, actor="hub", device_id=p.device_id, camera_id=p.camera_id, version=p.version,
                       action=SENT)

    store.write(tx)
