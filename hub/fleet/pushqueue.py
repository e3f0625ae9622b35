"""The queue shape every push to the agents shares (camera configs, model releases, and any later kind):
a table of numbered versions per target, each `pending` until the ingest link sends it (`sent`), then
`accepted` or `rejected` by the agent. Usually only a target's newest version is due (each replaces the
one before); a sent one that stays unanswered for a while is due again.

A push table needs the columns `device_id`, `version`, `status` and `sent_at`, plus the column that
names the target whose versions are numbered (`camera_id` for configs, `device_id` for the one model slot).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Column, Subquery, Table, and_, func, select
from sqlalchemy.engine import Connection, Row

from hub.storage import db

PENDING, SENT, ACCEPTED, REJECTED = "pending", "sent", "accepted", "rejected"


def newest_versions(table: Table, key: Column[Any]) -> Subquery:
    """(key, version): the newest version of each target in `table`."""
    return select(key, func.max(table.c.version).label("version")).group_by(key).subquery()


def newest_rows(table: Table, key: Column[Any]) -> Any:
    """A select of each target's newest row (add where clauses to narrow it)."""
    newest = newest_versions(table, key)
    return select(table).join(newest, and_(newest.c[key.name] == key, newest.c.version == table.c.version))


def due_rows(conn: Connection, table: Table, key: Column[Any], devices: Collection[str],
             resend_after_s: float, *, newest_only: bool = True) -> Sequence[Row[Any]]:
    """The versions of the targets of `devices` that their agents have not answered: pending, or sent
    longer than `resend_after_s` ago. `newest_only`: a target's newest version only (a config or a
    model replaces the one before); else every unanswered one, each target's in order (each retake
    counts)."""
    if not devices:
        return []
    stale = db.utcnow() - timedelta(seconds=resend_after_s)
    t = table.c
    query = newest_rows(table, key) if newest_only else select(table).order_by(key, t.version)
    return conn.execute(query.where(
        t.device_id.in_(list(devices)),
        (t.status == PENDING) | ((t.status == SENT) & (t.sent_at < stale)))).all()
