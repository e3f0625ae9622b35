"""Case transitions in the database: the only code that writes a case's status.

`transition()` locks the case row, asks `lifecycle.check_transition` whether the action is allowed,
then writes the new status, the stage deadline, an audit row and an outbox row in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from hub.cases.lifecycle import Action, CaseNotFound, CaseStatus, Role, TransitionInputError, check_transition
from hub.cases.routing import route_unit
from hub.settings import UnitConfig
from hub.storage import db
from hub.storage.store import Store


def transition(
    store: Store,
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
        c = db.cases
        row = conn.execute(select(c).where(c.c.case_id == case_id).with_for_update()).first()
        if row is None:
            raise CaseNotFound(f"no case {case_id!r}")
        case = dict(row._mapping)
        current = CaseStatus(case["status"])
        rule = check_transition(action, current, role, note, photo_sha256)
        if photo_sha256 is not None and not store.evidence.has(photo_sha256):
            raise TransitionInputError(f"photo_sha256 {photo_sha256!r} is not an uploaded evidence file")
        now = db.utcnow()
        values = _values_for(store, action, case, rule.target, now, unit, units or [], default_unit)
        conn.execute(update(c).where(c.c.case_id == case_id).values(status=rule.target.value, updated_at=now,
                                                                   **values))
        conn.execute(
            db.transitions.insert().values(
                case_id=case_id, at=now, actor=actor, action=action.value, from_status=current.value,
                to_status=rule.target.value, note=note, unit=values.get("unit"), photo_sha256=photo_sha256,
            )
        )
        conn.execute(
            db.case_changes.insert().values(
                at=now, case_id=case_id, kind="case.transition", status=rule.target.value,
                data={"action": action.value, "from": current.value, "actor": actor},
            )
        )
        return dict(conn.execute(select(c).where(c.c.case_id == case_id)).one()._mapping)

    result = store.write(tx)
    store.notify(case_id, "case.transition")
    return result


def _values_for(
    store: Store, action: Action, case: dict[str, Any], target: CaseStatus, now: datetime, unit: str | None,
    units: list[UnitConfig], default_unit: str | None,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if not (action == Action.START and case["deadline_at"] is not None):  # handling clock spans both stages
        values["deadline_at"] = store._deadline(case["class_id"], target, now)
    if action == Action.CONFIRM or (action == Action.REOPEN and case["filed_at"] is None):
        values["filed_at"] = case["filed_at"] or now
    if action in (Action.DISPATCH, Action.REWORK):
        chosen = unit or (case["unit"] if action == Action.REWORK else None) or route_unit(case, units, default_unit)
        if chosen is None:
            raise TransitionInputError("dispatch needs a unit: none given and no routing rule matches this case")
        known = {u.id for u in units} | ({default_unit} if default_unit else set())
        if known and chosen not in known:
            raise TransitionInputError(f"unknown unit {chosen!r}; configured units: {sorted(known)}")
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


