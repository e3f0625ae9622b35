"""Case events: the one wire form of a case change (a `case_changes` outbox row), for SSE and webhooks.

    {"change_id": 42, "kind": "case.transition", "case_id": "...", "status": "filed",
     "at": "2026-11-23T09:00:00+00:00", "data": {...} | null}

SSE sends it as the `data:` of an event whose `id:` is the change id and whose `event:` is the kind;
webhooks POST it as the body (signed) with the kind in `X-CityEye-Event`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

CREATED, UPDATED, TRANSITION, OVERDUE = "case.created", "case.updated", "case.transition", "case.overdue"
KINDS = (CREATED, UPDATED, TRANSITION, OVERDUE)


def case_event(change: Mapping[str, Any]) -> dict[str, Any]:
    """The payload of a case_changes row (columns id, kind, case_id, status, at, data)."""
    return {"change_id": change["id"], "kind": change["kind"], "case_id": change["case_id"],
            "status": change["status"], "at": change["at"].isoformat(), "data": change["data"]}


def to_json(change: Mapping[str, Any]) -> str:
    """One line of JSON (an SSE data line must not break)."""
    return json.dumps(case_event(change))
