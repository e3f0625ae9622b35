"""Open311 GeoReport v2 service requests read from the cases: which cases, and each as a request.

The HTTP side (routes, api_key auth, GeoReport errors) is hub.api.open311.

A request filed through Open311 keeps what the spec's fields carry that a case has no column for as
lines of the case's description: the client's `media_url` (the link; the photo itself is fetched in the
background by hub.open311.media and, once stored, is the request's media_url) and the reporter's contacts
(personal data: masked for the public and for readers, see `masked`). A request filed with only an address
has `address` and no lat/long.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Connection

from hub.cases import classes
from hub.cases import contacts as contacts_
from hub.cases.lifecycle import OPEN311_CLOSED, CaseStatus
from hub.storage import schema
from hub.storage.core import StoreBase
from protocol import plates

MEDIA_LINE = "media_url: "


def describe(description: str | None, media_url: str | None, contacts: list[str]) -> str | None:
    """A filed request's case description: the client's text, its media link, the reporter's contacts."""
    lines = [description, MEDIA_LINE + media_url if media_url else None,
             contacts_.reporter_line(contacts)]
    return "\n".join(line for line in lines if line) or None


def _linked_media(description: str | None) -> str | None:
    for line in (description or "").splitlines():
        if line.startswith(MEDIA_LINE):
            return line.removeprefix(MEDIA_LINE)
    return None


def masked(request: dict[str, Any]) -> dict[str, Any]:
    """`request` as the public and readers see it: the reporter's contacts hidden."""
    return {**request, "description": contacts_.hide_contacts(request["description"])}


def _request(row: dict[str, Any], media_sha: str | None) -> dict[str, Any]:
    status = CaseStatus(row["status"])
    return {
        "service_request_id": row["case_id"],
        "status": "closed" if status in OPEN311_CLOSED else "open",
        "status_notes": status.value,
        "service_name": classes.display_name(row["class_id"]),
        "service_code": row["class_id"],
        "description": _description(row),
        "agency_responsible": row["unit"],
        "requested_datetime": row["created_at"],
        "updated_datetime": row["updated_at"],
        "expected_datetime": row["deadline_at"],
        "address": row["address"],
        "lat": row["lat"],
        "long": row["lon"],
        "media_url": f"/evidence/{media_sha}" if media_sha else _linked_media(row["description"]),
    }


def _description(row: dict[str, Any]) -> str | None:
    """The case's description; a parking case's plate appended masked (Open311 output is public)."""
    if not row.get("plate"):
        return row["description"]
    plate = f"车牌 {plates.masked(row['plate'])}"
    return f"{row['description']} {plate}" if row["description"] else plate


def _first_media(conn: Connection, case_ids: list[str]) -> dict[str, str]:
    """Each case's first evidence file (its earliest event's first media), in one query for all cases."""
    if not case_ids:
        return {}
    e, m = schema.events, schema.media
    rank = func.row_number().over(partition_by=e.c.case_id, order_by=(e.c.id, m.c.id)).label("rank")
    ranked = (select(e.c.case_id, m.c.sha256, rank).join(m, m.c.event_pk == e.c.id)
              .where(e.c.case_id.in_(case_ids)).subquery())
    return dict(conn.execute(select(ranked.c.case_id, ranked.c.sha256).where(ranked.c.rank == 1)).all())


def _requests(conn: Connection, query: Select[Any]) -> list[dict[str, Any]]:
    rows = [dict(r._mapping) for r in conn.execute(query)]
    media = _first_media(conn, [r["case_id"] for r in rows])
    return [_request(row, media.get(row["case_id"])) for row in rows]


def find(store: StoreBase, case_ids: list[str] | None = None, service_code: str | None = None,
         start_date: datetime | None = None, end_date: datetime | None = None, status: str | None = None,
         ) -> list[dict[str, Any]]:
    """Service requests (cases), newest first, at most 1000: by case ids, class, creation time and
    open/closed (None: both)."""
    c = schema.cases
    query = select(c).order_by(c.c.created_at.desc()).limit(1000)
    if case_ids is not None:
        query = query.where(c.c.case_id.in_(case_ids))
    if service_code:
        query = query.where(c.c.class_id == service_code)
    if start_date:
        query = query.where(c.c.created_at >= start_date)
    if end_date:
        query = query.where(c.c.created_at < end_date)
    if status:
        closed = [s.value for s in OPEN311_CLOSED]
        query = query.where(c.c.status.in_(closed) if status == "closed" else c.c.status.not_in(closed))
    with store.engine.connect() as conn:
        return _requests(conn, query)
