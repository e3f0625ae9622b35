"""Licence plates on cases: who sees them in full, how they are searched, how they split and join cases.

A plate is personal data: the roles that act on a case (review, dispatch, handle, administer) see it in
full; the reader role and public outputs (Open311) see it masked (苏E·D5**12). Cases store the plate
without its dot (苏ED51712) so exact and partial searches are plain string matches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from hub import errors
from hub.cases import events as case_events
from hub.cases.lifecycle import CaseNotFound, TransitionInputError
from hub.storage import db, schema
from protocol.catalog import default_catalog
from protocol.plates import expected_colour, formatted, is_valid, masked, plain

if TYPE_CHECKING:
    from hub.storage.core import StoreBase

# Roles that act on a case and so on its vehicle's plate; every other role sees it masked.
PLATE_ROLES = frozenset({"admin", "reviewer", "dispatcher", "handler"})
CORRECTING_ROLES = frozenset({"admin", "reviewer"})  # may correct a misread plate (audited)
CORRECT_ACTION = "plate"  # the timeline's action for a correction
REPEAT_WINDOW_DAYS = 90  # repeat offenders: cases of the same plate within this many days


def stored(text: str | None) -> str | None:
    """The plate as the cases table keeps it (no dot), or None."""
    return plain(text) if text else None


def shown(text: str | None, role: str | None) -> str | None:
    """The stored plate as `role` may see it: formatted in full for acting roles, masked otherwise."""
    if not text:
        return None
    return formatted(text) if role in PLATE_ROLES else masked(text)


def may_see_plates(role: str | None) -> bool:
    return role in PLATE_ROLES


@dataclass(frozen=True)
class PlateQuery:
    """`?plate=`: a whole plate matches exactly; anything shorter matches plates that contain it."""

    value: str
    exact: bool

    @classmethod
    def parse(cls, raw: str) -> PlateQuery:
        value = plain(raw.strip())
        if not value:
            raise ValueError("plate: give a plate or part of one, e.g. 苏E·D51712 or D517")
        if any(ch in "%_\\" for ch in value):
            raise ValueError(f"plate: {raw!r} holds characters no plate has")
        return cls(value, is_valid(value))


def conflict(a: str | None, b: str | None) -> bool:
    """Two observations show different vehicles: both plates were read and they differ."""
    return bool(a and b and plain(a) != plain(b))


def same_vehicle(a: str | None, b: str | None) -> bool:
    return bool(a and b and plain(a) == plain(b))


def reads_plates(class_id: str) -> bool:
    """Whether cases of the class carry a plate (the catalog's parking classes)."""
    catalog = default_catalog()
    return class_id in catalog and catalog.get(class_id).plates


def plate_out(row: Mapping[str, Any], role: str | None) -> dict[str, Any] | None:
    """The case's plate as `role` may see it; None for classes without plate evidence. `text` None: the
    edge could not read it ("plate unreadable")."""
    if not reads_plates(row["class_id"]):
        return None
    return {"text": shown(row.get("plate"), role), "colour": row.get("plate_colour"),
            "score": row.get("plate_score") or 0.0, "masked": bool(row.get("plate")) and not may_see_plates(role),
            "corrected": bool(row.get("plate_corrected")), "can_correct": role in CORRECTING_ROLES,
            "frames": None, "attempts": None, "cases_90d": None}


def plate_condition(query: PlateQuery) -> Any:
    c = schema.cases.c.plate
    return c == query.value if query.exact else c.contains(query.value, autoescape=True)


def cases_with_plate(conn: Connection, plate: str, now: datetime) -> int:
    """Cases of this plate created in the last REPEAT_WINDOW_DAYS (this one included)."""
    c = schema.cases
    since = now - timedelta(days=REPEAT_WINDOW_DAYS)
    return conn.execute(select(func.count()).select_from(c).where(c.c.plate == plate, c.c.created_at >= since)
                        ).scalar_one()


def latest_read(payloads: Sequence[Any]) -> dict[str, Any] | None:
    """The plate of the newest event that carried one (frames agreed, attempts)."""
    for payload in reversed(payloads):
        data = json.loads(payload) if isinstance(payload, str | bytes) else payload
        plate = (data or {}).get("plate")
        if plate:
            return plate
    return None


def correct(store: StoreBase, case_id: str, text: str, note: str | None, *, actor: str) -> dict[str, Any]:
    """Set the case's plate to `text` (a reviewer's correction of a misread) and audit it in the case's
    timeline: who, when, from what to what, why. Raises ValueError for a text that is not a plate."""
    new = plain(formatted(text))  # ValueError names the text

    def tx(conn: Connection) -> dict[str, Any]:
        c = schema.cases
        row = conn.execute(select(c).where(c.c.case_id == case_id).with_for_update()).first()
        if row is None:
            raise CaseNotFound(case_id)
        if not reads_plates(row.class_id):
            raise TransitionInputError(errors.NO_PLATE_CLASS, f"cases of {row.class_id} carry no plate",
                                       class_id=row.class_id)
        now = db.utcnow()
        old = formatted(row.plate) if row.plate else "—"
        expected = expected_colour(new)
        colour = row.plate_colour or (expected.value if expected else None)
        conn.execute(update(c).where(c.c.case_id == case_id).values(
            plate=new, plate_colour=colour, plate_corrected=True, updated_at=now))
        why = f": {note}" if note else ""
        conn.execute(schema.transitions.insert().values(
            case_id=case_id, at=now, actor=actor, action=CORRECT_ACTION, from_status=row.status,
            to_status=row.status, note=f"{old} → {formatted(new)}{why}"))
        # A case change of the existing vocabulary (webhook subscribers know it); the data says what changed.
        conn.execute(schema.case_changes.insert().values(
            at=now, case_id=case_id, kind=case_events.UPDATED, status=row.status,
            data={"actor": actor, "changed": "plate"}))
        return dict(conn.execute(select(c).where(c.c.case_id == case_id)).one()._mapping)

    result = store.write(tx)
    store.notify(case_id, case_events.UPDATED)
    return result
