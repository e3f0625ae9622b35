"""Change-rule references to re-take: the hub's side of "this place is clear now" (issue 17).

A `source: change` rule compares a zone with its clear reference. When a case of such a rule is verified
clear, how the place looks now is how it should look: the hub asks the camera's agent to re-take the
reference there, as a hub-signed push of kind `change_reference` (the ingest link sends it with the
config and model pushes, hub.fleet.link; the agent's PushResult answers it).

Which transitions mean "the place is clear now":
- `verify` by a reviewer (handled -> verified): an inspector saw the place cleaned up. The new look may
  differ from the old reference (a bin moved, fresh paving), and without a retake the rule would report
  it again and again.
- `auto_verify` (the edge reported the problem cleared on a handled case): the camera itself saw the
  place match again; re-taking refreshes the reference (light, season) at the moment it is known clear.
- Not `close` (it follows a verify, which already sent one, and may come days later, when something new
  could lie there), not `void` (a void says the capture was wrong or a duplicate, not that the place
  looks as it should; a voided case keeps absorbing the repeats), not `rework` (the place is not clear).

Delivery: each retake is the camera's next version, queued `pending`. An agent that is offline gets it
when it reconnects (the link looks for what is due as soon as a device connects), because the agent
keeps every pixel holding a change that began after the verification (the push's `issued_at`), a late
retake cannot swallow something set down meanwhile. A newer retake of the same case (verified, reworked,
verified again) supersedes an older one not yet sent, which is then dropped (`superseded`). A sent retake
unanswered for `resend_after_s` is sent again; an agent that reports on connect having applied an older
version gets the newer ones again.
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
from protocol.push import PushKind, PushResult

SUPERSEDED = "superseded"
CHANGE_LABEL = "change"  # what events of `source: change` rules carry in `labels` (edge_agent.change.rule.LABEL)


@dataclass(frozen=True)
class DueRetake:
    device_id: str
    camera_id: str
    version: int
    zone: str | None
    box: dict[str, float] | None
    case_id: str | None
    created_at: datetime
    created_by: str


def _change_event(conn: Connection, case_id: str) -> Any:
    """The case's first event if a change rule reported it (its device and camera), else None."""
    e = schema.events
    row = conn.execute(select(e.c.device_id, e.c.camera_id, e.c.payload).where(e.c.case_id == case_id)
                       .order_by(e.c.id).limit(1)).first()
    if row is None or CHANGE_LABEL not in ((row.payload or {}).get("labels") or []):
        return None
    return row


def queue(conn: Connection, case: dict[str, Any], *, actor: str, now: datetime) -> int | None:
    """Inside the transaction that verified `case` (a cases row as a dict): queue a retake of its place
    if a change rule reported it. Returns the retake's version, None when the case is not a change case."""
    event = _change_event(conn, case["case_id"])
    if event is None:
        return None
    r = schema.reference_retakes
    camera_id = event.camera_id
    conn.execute(update(r).where(r.c.camera_id == camera_id, r.c.case_id == case["case_id"], r.c.status == PENDING)
                 .values(status=SUPERSEDED, answered_at=now))
    last = conn.execute(select(r.c.version).where(r.c.camera_id == camera_id).order_by(r.c.version.desc())
                        .limit(1)).scalar()
    version = (last or 0) + 1
    conn.execute(r.insert().values(camera_id=camera_id, version=version, device_id=event.device_id,
                                   zone=case.get("zone"), box=case.get("box"), case_id=case["case_id"],
                                   status=PENDING, created_at=now, created_by=actor[:128]))
    return version


def due(conn: Connection, devices: Collection[str], resend_after_s: float) -> list[DueRetake]:
    """Retakes for the connected `devices` not yet answered: pending, or sent over `resend_after_s` ago;
    oldest first (each camera's versions in order)."""
    r = schema.reference_retakes
    rows = pushqueue.due_rows(conn, r, r.c.camera_id, devices, resend_after_s, newest_only=False)
    return [DueRetake(x.device_id, x.camera_id, x.version, x.zone, x.box, x.case_id, x.created_at, x.created_by)
            for x in rows]


def mark_sent(store: Any, retakes: list[DueRetake]) -> None:
    if not retakes:
        return

    def tx(conn: Connection) -> None:
        r = schema.reference_retakes
        now = db.utcnow()
        for x in retakes:
            conn.execute(update(r).where(r.c.camera_id == x.camera_id, r.c.version == x.version,
                                         r.c.status.in_((PENDING, SENT))).values(status=SENT, sent_at=now))

    store.write(tx)


def record_result(store: Any, result: PushResult) -> None:
    """An agent's answer to a retake, or its report (on connect) of the newest version it applied."""
    if result.kind is not PushKind.CHANGE_REFERENCE:
        return

    def tx(conn: Connection) -> None:
        r = schema.reference_retakes
        mine = (r.c.camera_id == result.target) & (r.c.device_id == result.device_id)
        if result.report:
            conn.execute(update(r).where(mine, r.c.version <= result.version, r.c.status == SENT)
                         .values(status=ACCEPTED, answered_at=db.utcnow()))
            conn.execute(update(r).where(mine, r.c.version > result.version, r.c.status == SENT)
                         .values(status=PENDING, sent_at=None))
            return
        conn.execute(update(r).where(mine, r.c.version == result.version, r.c.status.in_((PENDING, SENT)))
                     .values(status=ACCEPTED if result.accepted else REJECTED, answered_at=db.utcnow(),
                             error=result.error))

    store.write(tx)


def retakes_of(store: Any, camera_id: str) -> list[dict[str, Any]]:
    """A camera's retakes, newest first (the fleet page, tests)."""
    r = schema.reference_retakes
    with store.engine.connect() as conn:
        rows = conn.execute(select(r).where(r.c.camera_id == camera_id).order_by(r.c.version.desc())).all()
    return [dict(x._mapping) for x in rows]
