"""GET /stats per camera: capture precision of each edge camera, worst first, with its most voided class."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.storage.store import Store
from tests.hub.hubfactory import ingest, make_event

Headers = dict[str, dict[str, str]]
VENDOR, PARKING, GARBAGE = "unlicensed_mobile_vendor", "illegal_car_parking", "bagged_garbage"


def _since() -> str:
    return (datetime.now(UTC) - timedelta(days=1)).isoformat()


def _case(store: Store, camera_id: str, class_id: str, n: int) -> str:
    """One edge case; its own zone and problem id so dedup keeps it apart from the others."""
    event, media = make_event(problem_id=f"prob-{camera_id}-{n}", camera_id=camera_id, class_id=class_id,
                              zone=f"{camera_id}-z{n}")
    return str(ingest(store, event, media).case_id)


def _review(client: Any, tokens: Headers, case_id: str, action: str) -> None:
    body = {"note": "false capture"} if action == "void" else None
    r = client.post(f"/cases/{case_id}/{action}", json=body, headers=tokens["reviewer"])
    assert r.status_code == 200, r.text


def _seed(client: Any, store: Store, tokens: Headers) -> None:
    # cam-a: a badly placed camera, mostly false vendor captures; cam-b: good; cam-c: nothing reviewed yet.
    plan = {
        "cam-a": [(VENDOR, "void"), (VENDOR, "void"), (PARKING, "void"), (PARKING, "confirm"), (VENDOR, None)],
        "cam-b": [(GARBAGE, "confirm"), (GARBAGE, "confirm"), (PARKING, "void")],
        "cam-c": [(PARKING, None), (GARBAGE, None)],
    }
    for camera_id, cases in plan.items():
        for n, (class_id, action) in enumerate(cases):
            case_id = _case(store, camera_id, class_id, n)
            if action:
                _review(client, tokens, case_id, action)


def test_per_camera_precision_worst_first(client: Any, store: Store, tokens: Headers) -> None:
    _seed(client, store, tokens)
    # people's reports and sensors are no cameras: a voided report must not show up
    report = {"class_id": VENDOR, "lat": 39.9, "lon": 116.4, "description": "vendor at the gate"}
    _review(client, tokens, client.post("/intake/report", json=report, headers=tokens["reviewer"]).json()["case_id"],
            "void")
    stats = client.get("/stats", params={"since": _since()}, headers=tokens["reader"]).json()
    rows = [(r["camera_id"], r["cases"], r["filed"], r["void"], r["precision"], r["most_voided_class"],
             r["most_voided_class_voids"]) for r in stats["per_camera"]]
    assert rows == [
        ("cam-a", 5, 1, 3, 0.25, VENDOR, 2),
        ("cam-b", 3, 2, 1, pytest.approx(2 / 3), PARKING, 1),
        ("cam-c", 2, 0, 0, None, None, 0),
    ]
    assert stats["per_camera_total"] == 3


def test_per_camera_ties_limit_and_range(client: Any, store: Store, tokens: Headers) -> None:
    _seed(client, store, tokens)
    for n in range(2):  # cam-d: 0 of 2 ranks before cam-e's 0 of 1 (more reviewer time lost)
        _review(client, tokens, _case(store, "cam-d", VENDOR, n), "void")
    _review(client, tokens, _case(store, "cam-e", GARBAGE, 0), "void")
    h = tokens["reader"]
    top = client.get("/stats", params={"since": _since(), "camera_limit": 3}, headers=h).json()
    assert [(r["camera_id"], r["precision"]) for r in top["per_camera"]] == [("cam-d", 0.0), ("cam-e", 0.0),
                                                                             ("cam-a", 0.25)]
    assert top["per_camera_total"] == 5
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    empty = client.get("/stats", params={"since": _since(), "until": earlier}, headers=h).json()
    assert empty["per_camera"] == [] and empty["per_camera_total"] == 0
    for bad in (0, -1, 501, "many"):
        assert client.get("/stats", params={"camera_limit": bad}, headers=h).status_code == 422
    widest = client.get("/stats", params={"since": _since(), "camera_limit": 500}, headers=h).json()
    assert len(widest["per_camera"]) == 5


def test_per_day_counts_the_bureaus_days_not_utc_days(store: Store) -> None:
    """07:30 in Shanghai is 23:30 UTC the day before: the event and its case belong to the Shanghai day."""
    from zoneinfo import ZoneInfo

    from hub.cases import queries
    from hub.storage import schema

    at = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
    event, media = make_event(problem_id="prob-early", at=at)
    case_id = ingest(store, event, media).case_id
    store.write(lambda conn: conn.execute(schema.cases.update().where(schema.cases.c.case_id == case_id)
                                          .values(created_at=at)))
    since, until = at - timedelta(days=2), at + timedelta(days=2)
    with store.engine.connect() as conn:
        local = queries.statistics_for(conn, since, until, tz=ZoneInfo("Asia/Shanghai"))["per_day"]
        utc = queries.statistics_for(conn, since, until)["per_day"]
    assert local == [{"day": "2026-11-25", "events": 1, "cases": 1}]
    assert utc == [{"day": "2026-11-24", "events": 1, "cases": 1}]
