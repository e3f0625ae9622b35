"""Model pushes to the agents: which release each device should run, as numbered pushes the ingest link
sends (hub.fleet.link) and the agents answer (edge_agent.model_push).

An agent has one model slot: the release assigned to its cameras (a rollout moves whole devices).
Each change of a device's release is the next version for it, `pending` until the link sends it
(`sent`), then `accepted` or `rejected` with the agent's error; a sent push unanswered for a while is
sent again, and an agent that reports an older version on connect gets the newest again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from hub.fleet import pushqueue
from hub.fleet.pushqueue import ACCEPTED, PENDING, REJECTED, SENT
from hub.storage import db, schema
from protocol.push import PushResult


@dataclass(frozen=True)
class DueModelPush:
    device_id: str
    version: int
    release_id: int
    created_at: datetime
    created_by: str


def queue_for_devices(conn: Connection, devices: Collection[str], actor: str) -> None:
    """After assignments changed: a new push for each device whose cameras' release differs from its last push."""
    a, c, p = schema.model_assignments, schema.cameras, schema.model_pushes
    for device_id in devices:
        wanted = conn.execute(select(a.c.release_id).join(c, c.c.camera_id == a.c.camera_id)
                              .where(c.c.device_id == device_id).order_by(a.c.assigned_at.desc()).limit(1)).scalar()
        last = conn.execute(select(p.c.version, p.c.release_id).where(p.c.device_id == device_id)
                            .order_by(p.c.version.desc()).limit(1)).first()
        if wanted is None or (last is not None and last.release_id == wanted):
            continue
        conn.execute(p.insert().values(device_id=device_id, version=(last.version if last else 0) + 1,
                                       release_id=wanted, status=PENDING, created_at=db.utcnow(),
                                       created_by=actor[:128]))


def devices_of(conn: Connection, cameras: Collection[str]) -> list[str]:
    c = schema.cameras
    return sorted({r[0] for r in conn.execute(select(c.c.device_id).where(c.c.camera_id.in_(list(cameras))))})


def due(conn: Connection, devices: Collection[str], resend_after_s: float) -> list[DueModelPush]:
    p = schema.model_pushes
    rows = pushqueue.due_rows(conn, p, p.c.device_id, devices, resend_after_s)
    return [DueModelPush(r.device_id, r.version, r.release_id, r.created_at, r.created_by) for r in rows]


def mark_sent(store: Any, pushes: list[DueModelPush]) -> None:
    if not pushes:
        return

    def tx(conn: Connection) -> None:
        p = schema.model_pushes
        for push in pushes:
            conn.execute(update(p).where(p.c.device_id == push.device_id, p.c.version == push.version)
                         .values(status=SENT, sent_at=db.utcnow()))

    store.write(tx)


def record_result(store: Any, result: PushResult) -> None:
    """An agent's answer to a model push, or its report of the version it runs (on connect)."""
    if result.kind.value != "model":
        return

    def tx(conn: Connection) -> None:
        p = schema.model_pushes
        if result.report:
            conn.execute(update(p).where(p.c.device_id == result.device_id, p.c.version > result.version,
                                         p.c.status == SENT).values(status=PENDING, sent_at=None))
            conn.execute(update(p).where(p.c.device_id == result.device_id, p.c.version == result.version,
                                         p.c.status.in_((PENDING, SENT))).values(status=ACCEPTED,
                                                                                 answered_at=db.utcnow()))
            return
        conn.execute(update(p).where(p.c.device_id == result.device_id, p.c.version == result.version,
                                     p.c.status.in_((PENDING, SENT)))
                     .values(status=ACCEPTED if result.accepted else REJECTED, answered_at=db.utcnow(),
                             error=result.error))

    store.write(tx)


def state(store: Any) -> list[dict[str, Any]]:
    """Per device: the newest model push and its status (the page's rollout view)."""
    p = schema.model_pushes
    with store.engine.connect() as conn:
        rows = conn.execute(pushqueue.newest_rows(p, p.c.device_id)).all()
    return [dict(r._mapping) for r in rows]
