"""Overdue cases: a periodic sweep records `case.overdue` once per case and deadline.

A case is overdue when its stage deadline has passed and it is not void or closed (the same test as the
API's `overdue` flag, `queries.CaseFilter.overdue`). For each such case the sweep writes, in one
transaction, a timeline row (action `overdue`, at = the deadline passed) and a `case.overdue` outbox row,
which the SSE stream and the webhooks carry like any other change. The timeline row is the record that
the event fired: a case is picked only while no `overdue` row with its current deadline exists, so a
restart, a second sweep or a second hub process does not fire it again, while a new deadline (the case
moved on and fell behind again) fires once more. Each tick handles at most `batch` cases.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.engine import Connection

from hub.cases import events as case_events
from hub.cases import queries
from hub.cases.lifecycle import OVERDUE_ACTION
from hub.storage import db, schema
from hub.storage.store import Store

log = logging.getLogger(__name__)
ACTOR = "hub"
_OVERDUE = queries.CaseFilter(overdue=True)  # the API's own overdue test, so both always agree


class OverdueSweeper:
    """Built from (store, stop_event); `run()` sweeps every `poll_s` until stopped."""

    def __init__(self, store: Store, stop_event: threading.Event, *, poll_s: float = 30.0, batch: int = 200) -> None:
        self.store = store
        self.stop_event = stop_event
        self.poll_s = poll_s
        self.batch = batch

    def run(self) -> None:
        while not self.stop_event.is_set():
            fired = 0
            try:
                fired = self.tick()
            except Exception:  # a database hiccup: the next tick retries
                log.exception("overdue sweep failed")
            if fired < self.batch:  # a full batch means more are waiting: sweep again at once
                self.stop_event.wait(self.poll_s)

    def tick(self, now: datetime | None = None) -> int:
        """Record the overdue cases not yet recorded for their deadline; returns how many."""
        fired = self.store.write(lambda conn: self._sweep(conn, now or db.utcnow()))
        for case_id in fired:
            self.store.notify(case_id, case_events.OVERDUE)
        return len(fired)

    def _sweep(self, conn: Connection, now: datetime) -> list[str]:
        db.advisory_lock(conn, "overdue-sweep")  # two hub processes: the second sees the first's rows
        c, t = schema.cases, schema.transitions
        recorded = exists().where(t.c.case_id == c.c.case_id, t.c.action == OVERDUE_ACTION,
                                  t.c.at == c.c.deadline_at)
        query = (select(c.c.case_id, c.c.status, c.c.deadline_at, c.c.unit)
                 .where(*queries.case_conditions(_OVERDUE, now), ~recorded).order_by(c.c.deadline_at, c.c.case_id)
                 .limit(self.batch))
        if db.is_postgres(conn):  # skip cases a transition holds (it may move the deadline): the next tick sees
            query = query.with_for_update(of=c, skip_locked=True)
        rows = conn.execute(query).all()
        if rows:
            conn.execute(schema.transitions.insert(), [_timeline_row(r) for r in rows])
            conn.execute(schema.case_changes.insert(), [_change_row(r, now) for r in rows])
        return [r.case_id for r in rows]


def _timeline_row(row: Any) -> dict[str, Any]:
    return {"case_id": row.case_id, "at": row.deadline_at, "actor": ACTOR, "action": OVERDUE_ACTION,
            "from_status": None, "to_status": row.status, "unit": row.unit,
            "note": f"deadline of the {row.status} stage passed"}


def _change_row(row: Any, now: datetime) -> dict[str, Any]:
    return {"at": now, "case_id": row.case_id, "kind": case_events.OVERDUE, "status": row.status,
            "data": {"deadline_at": row.deadline_at.isoformat(), "unit": row.unit}}


def start(store: Store, stop_event: threading.Event, **kwargs: Any) -> threading.Thread:
    sweeper = OverdueSweeper(store, stop_event, **kwargs)
    thread = threading.Thread(target=sweeper.run, name="overdue-sweep", daemon=True)
    thread.start()
    return thread
