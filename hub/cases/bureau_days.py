"""The bureau's own days off and working days (edited on the page), stored in `calendar_days`, and the
deadlines they make together with the official calendar of the hub settings."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from hub.cases import classes
from hub.cases.lifecycle import Deadlines, StageHours
from hub.storage import db, schema

if TYPE_CHECKING:
    from hub.settings import HubSettings

OFF, WORK = "off", "work"


def load(conn: Connection) -> tuple[list[date], list[date]]:
    """(days off, working days) the bureau set."""
    rows = conn.execute(select(schema.calendar_days.c.day, schema.calendar_days.c.kind)).all()
    return ([date.fromisoformat(r.day) for r in rows if r.kind == OFF],
            [date.fromisoformat(r.day) for r in rows if r.kind == WORK])


def replace(store: Any, days_off: Iterable[date], working_days: Iterable[date], *, actor: str) -> None:
    rows = ([{"day": d.isoformat(), "kind": OFF} for d in sorted(set(days_off))]
            + [{"day": d.isoformat(), "kind": WORK} for d in sorted(set(working_days))])

    def tx(conn: Connection) -> None:
        conn.execute(delete(schema.calendar_days))
        if rows:
            now = db.utcnow()
            conn.execute(schema.calendar_days.insert(), [{**r, "set_by": actor[:128], "set_at": now} for r in rows])

    store.write(tx)


def deadlines(settings: HubSettings, days_off: Iterable[date], working_days: Iterable[date]) -> Deadlines:
    calendar = settings.calendar.build(days_off=days_off, working_days=working_days)
    return Deadlines(calendar, classes.sla_hours, StageHours(**settings.stage_hours))


def package_version() -> str:
    return version("holidays")
