"""Case transitions in the database: the only code that writes a case's status.

`transition()` locks the case row, asks `lifecycle.check_transition` whether the action is allowed,
then writes the new status, the stage deadline, an audit row and an outbox row in one transaction.
Ingest's own transitions (a case opened, a handled case verified by its camera) are written here too,
into the burst's AuditLog: no other module writes a case's status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from hub import errors
from hub.cases.lifecycle import (
    AUTO_VERIFY_ACTION,
    OPEN_ACTION,
    UNDO_ACTION,
    UNDOABLE,
    Action,
    CaseNotFound,
    CaseStatus,
    Role,
    TransitionInputError,
    check_transition,
    check_undo,
)
from hub.cases.routing import route_unit
from hub.fleet import retakes
from hub.settings import UnitConfig
from hub.storage import db, schema

if TYPE_CHECKING:
    from hub.cases.dedup import CaseRow, Observation
    from hub.storage.core import StoreBase


def transition(
    store: StoreBase,
    case_id: str,
    action: Action,
    *,
    actor: str,
    role: Role,
    note: str | None = None,
    unit: str | None = None,
    photo_sha256: str | None = None,
    units: list[UnitConfig] | None = None,
    default_unit: str | None = None,
) -> dict[str, Any]:
    """Apply `action` to the case; returns the updated case row. Raises a TransitionError subclass."""

    def tx(conn: Connection) -> dict[str, Any]:
        c = schema.cases
        row = conn.execute(select(c).where(c.c.case_id == case_id).with_for_update()).first()
        if row is None:
            raise CaseNotFound(case_id)
        case = dict(row._mapping)
        current = CaseStatus(case["status"])
        rule = check_transition(action, current, role, note, photo_sha256)
        if photo_sha256 is not None and not store.evidence.has(photo_sha256):
            raise TransitionInputError(errors.PHOTO_UNKNOWN,
                                       f"photo_sha256 {photo_sha256!r} is not an uploaded evidence file")
        now = db.utcnow()
        values = _values_for(store, action, case, rule.target, now, unit, units or [], default_unit)
        conn.execute(update(c).where(c.c.case_id == case_id).values(status=rule.target.value, updated_at=now,
                                                                   **values))
        conn.execute(
            schema.transitions.insert().values(
                case_id=case_id, at=now, actor=actor, action=action.value, from_status=current.value,
                to_status=rule.target.value, note=note, unit=values.get("unit"), photo_sha256=photo_sha256,
                undo_values=_before(case, values) if action in UNDOABLE else None,
            )
        )
        conn.execute(
            schema.case_changes.insert().values(
                at=now, case_id=case_id, kind="case.transition", status=rule.target.value,
                data={"action": action.value, "from": current.value, "actor": actor},
            )
        )
        if action == Action.VERIFY:  # the place is clear now: a change rule's reference is re-taken there
            retakes.queue(conn, case, actor=actor, now=now)
        return dict(conn.execute(select(c).where(c.c.case_id == case_id)).one()._mapping)

    result = store.write(tx)
    store.notify(case_id, "case.transition")
    return result


def undo(store: StoreBase, case_id: str, *, actor: str, grace_s: float) -> dict[str, Any]:
    """Take back `actor`'s own confirm or void of the case within `grace_s` seconds: the case gets back its
    status and the values the action changed (deadline, filing time), and an `undo` audit row says so.
    Returns the updated case row; raises a TransitionError subclass saying why not."""

    def tx(conn: Connection) -> dict[str, Any]:
        c, t = schema.cases, schema.transitions
        row = conn.execute(select(c).where(c.c.case_id == case_id).with_for_update()).first()
        if row is None:
            raise CaseNotFound(case_id)
        current = CaseStatus(row.status)
        last = conn.execute(select(t).where(t.c.case_id == case_id).order_by(t.c.id.desc()).limit(1)).first()
        now = db.utcnow()
        action = check_undo(last.action if last else None, last.actor if last else None,
                            last.to_status if last else None, (now - last.at).total_seconds() if last else 0.0,
                            actor=actor, current=current, grace_s=grace_s)
        assert last is not None  # check_undo refuses a case without transitions
        restored = CaseStatus(last.from_status)
        conn.execute(update(c).where(c.c.case_id == case_id).values(
            status=restored.value, updated_at=now, **_restore(last.undo_values or {})))
        conn.execute(schema.transitions.insert().values(
            case_id=case_id, at=now, actor=actor, action=UNDO_ACTION, from_status=current.value,
            to_status=restored.value, note=f"undo of {action.value} ({last.at.isoformat(timespec='seconds')})"))
        conn.execute(schema.case_changes.insert().values(
            at=now, case_id=case_id, kind="case.transition", status=restored.value,
            data={"action": UNDO_ACTION, "from": current.value, "actor": actor, "undid": action.value}))
        return dict(conn.execute(select(c).where(c.c.case_id == case_id)).one()._mapping)

    result = store.write(tx)
    store.notify(case_id, "case.transition")
    return result


_TIME_COLUMNS = frozenset({"deadline_at", "filed_at", "handled_at", "closed_at"})


def _before(case: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The case's values that `values` will overwrite, as JSON (times as ISO 8601)."""
    return {k: case[k].isoformat() if isinstance(case[k], datetime) else case[k] for k in values}


def _restore(saved: dict[str, Any]) -> dict[str, Any]:
    return {k: datetime.fromisoformat(v) if k in _TIME_COLUMNS and v is not None else v for k, v in saved.items()}


def _values_for(
    store: StoreBase, action: Action, case: dict[str, Any], target: CaseStatus, now: datetime, unit: str | None,
    units: list[UnitConfig], default_unit: str | None,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if not (action == Action.START and case["deadline_at"] is not None):  # handling clock spans both stages
        values["deadline_at"] = store.deadline(case["class_id"], target, now)
    if action == Action.CONFIRM or (action == Action.REOPEN and case["filed_at"] is None):
        values["filed_at"] = case["filed_at"] or now
    if action in (Action.DISPATCH, Action.REWORK):
        chosen = unit or (case["unit"] if action == Action.REWORK else None) or route_unit(case, units, default_unit)
        if chosen is None:
            raise TransitionInputError(errors.NEEDS_UNIT,
                                       "dispatch needs a unit: none given and no routing rule matches this case")
        known = {u.id for u in units} | ({default_unit} if default_unit else set())
        if known and chosen not in known:
            raise TransitionInputError(errors.UNKNOWN_UNIT, f"unknown unit {chosen!r}; configured units: "
                                       f"{sorted(known)}", unit=chosen)
        values["unit"] = chosen
    elif action == Action.RETURN:
        values["unit"] = None
    if action == Action.HANDLE:
        values["handled_at"] = now
        values["handled_on_time"] = case["deadline_at"] is None or now <= case["deadline_at"]
    if action == Action.CLOSE:
        values["closed_at"] = now
    if action == Action.REOPEN:
        values["closed_at"] = None
    return values


# ---- transitions inside the ingest transaction (hub.ingest.burst, via hub.cases.dedup.decide) --------------

# Written once per burst, one statement per table: driver SQL on tuples of driver values (db.Batch).
_CHANGE_INSERT = db.batch_insert(schema.case_changes, ("at", "case_id", "kind", "status", "data"))
_TRANSITION_INSERT = db.batch_insert(schema.transitions, ("case_id", "at", "actor", "action", "from_status",
                                                          "to_status", "note"))
_SET_CLEARED = db.batch_update(schema.cases, ("cleared_at",), "case_id")
_SET_VERIFIED = db.batch_update(schema.cases, ("status", "deadline_at", "updated_at"), "case_id")
_JSON_NULL = db.bind_json(None)

# When a case of a class entering a status at a time must leave it (StoreBase.deadline).
DeadlineRule = Callable[[str, CaseStatus, datetime], datetime | None]


@dataclass
class AuditLog:
    """What an ingest transaction records besides the cases, written last in one statement per table:
    the audit transitions and the case_changes outbox (SSE and webhooks read it), in decision order."""

    transitions: list[tuple[str, str, str, str | None, str, str | None]] = field(default_factory=list)
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (case_id, kind, status)

    def write(self, conn: Connection, at: Any) -> None:
        """`at`: the transaction's time, already bound (db.bind_time)."""
        _TRANSITION_INSERT.run(conn, [(case_id, at, *rest) for case_id, *rest in self.transitions])
        _CHANGE_INSERT.run(conn, [(at, case_id, kind, str(status), _JSON_NULL)
                                  for case_id, kind, status in self.changes])


def record_open(audit: AuditLog, case: CaseRow, obs: Observation, reporter: str, previous: CaseRow | None) -> None:
    """A new case in its first status: the audit row of its opening, and its outbox row."""
    audit.transitions.append((
        case.case_id, reporter if ":" in reporter else f"{obs.source}:{reporter}", OPEN_ACTION, None,
        CaseStatus.PENDING_REVIEW.value, f"recurrence of {previous.case_id}" if previous else None,
    ))
    audit.changes.append((case.case_id, "case.created", CaseStatus.PENDING_REVIEW.value))


def mark_cleared(conn: Connection, case: CaseRow, obs: Observation, now: datetime, reporter: str, audit: AuditLog,
                 deadline: DeadlineRule) -> None:
    """The problem is gone from the place: a handled case is verified by the camera itself (inside the
    ingest transaction; its audit rows go to `audit`)."""
    t = db.bind_time(conn)
    _SET_CLEARED.run(conn, [(t(obs.observed_at), case.case_id)])
    if case.status != CaseStatus.HANDLED:
        audit.changes.append((case.case_id, "case.updated", case.status))
        return
    case.status = CaseStatus.VERIFIED.value  # no longer absorbs repeats, for the rest of the burst too
    due = deadline(case.class_id, CaseStatus.VERIFIED, now)
    _SET_VERIFIED.run(conn, [(CaseStatus.VERIFIED.value, None if due is None else t(due), t(now),
                              case.case_id)])
    audit.transitions.append((
        case.case_id, f"edge:{reporter}", AUTO_VERIFY_ACTION, CaseStatus.HANDLED.value, CaseStatus.VERIFIED.value,
        f"problem cleared at the place (camera {obs.camera_id})",
    ))
    audit.changes.append((case.case_id, "case.transition", CaseStatus.VERIFIED.value))
    box = case.box.model_dump() if case.box is not None else None
    retakes.queue(conn, {"case_id": case.case_id, "zone": case.zone, "box": box}, actor=f"edge:{reporter}", now=now)
