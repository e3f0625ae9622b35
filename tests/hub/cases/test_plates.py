"""Licence plates on cases: dedup by plate, repeat offenders, ?plate= search, masking per role and the
audited correction of a misread; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hub.cases.plates import PlateQuery, shown
from hub.storage.store import Store
from protocol.messages import PlateInfo, ProblemEvent
from protocol.plates import PlateColour
from tests.hub.cases.test_dedup import case_row, close_case
from tests.hub.hubfactory import T0, ingest, make_event

Headers = dict[str, dict[str, str]]
BOX = (0.5, 0.5, 0.7, 0.7)


def parked(store: Store, plate: str | None, *, problem: str, box: tuple[float, float, float, float] = BOX,
           at: Any = T0, camera: str = "cam-1") -> str:
    """Ingest a parking event whose edge read `plate` (None: tried, unreadable); returns its case id."""
    event, media = make_event(problem_id=problem, box=box, at=at, camera_id=camera)
    info = PlateInfo(text=plate, colour=PlateColour.BLUE if plate else None, score=0.95 if plate else 0.0,
                     frames=3 if plate else 0, attempts=4)
    event = ProblemEvent.model_validate({**event.model_dump(), "plate": info.model_dump()})
    case_id = ingest(store, event, media).case_id
    assert case_id
    return case_id


def test_same_plate_same_place_is_one_case_and_two_plates_are_two(store: Store) -> None:
    first = parked(store, "苏E·D51712", problem="prob-p001")
    # the same car again (a new track), its box shifted right off the old one: still the same case
    again = parked(store, "苏E·D51712", problem="prob-p002", box=(0.72, 0.5, 0.9, 0.7), at=T0 + timedelta(minutes=3))
    assert again == first and case_row(store, first)["event_count"] == 2
    # a different car in the same spot, its box on top of the first: a case of its own
    other = parked(store, "皖A·73C39", problem="prob-p003", box=(0.51, 0.5, 0.71, 0.7), at=T0 + timedelta(minutes=4))
    assert other != first
    assert {case_row(store, c)["plate"] for c in (first, other)} == {"苏ED51712", "皖A73C39"}
    # an unreadable read in that spot still joins by place (no plate contradicts it)
    assert parked(store, None, problem="prob-p004", at=T0 + timedelta(minutes=5)) in {first, other}


def test_a_later_read_fills_in_an_unreadable_case(store: Store) -> None:
    case_id = parked(store, None, problem="prob-q001")
    assert case_row(store, case_id)["plate"] is None
    assert parked(store, "苏E·D51712", problem="prob-q001", at=T0 + timedelta(minutes=1)) == case_id
    row = case_row(store, case_id)
    assert (row["plate"], row["plate_colour"], row["plate_score"]) == ("苏ED51712", "blue", 0.95)


def test_a_plate_seen_again_after_its_case_closed_links_to_it(store: Store) -> None:
    first = parked(store, "苏E·D51712", problem="prob-r001")
    close_case(store, first)
    # days later, on another camera: a repeat offender, linked by its plate
    later = parked(store, "苏E·D51712", problem="prob-r002", at=T0 + timedelta(days=3), camera="cam-2")
    row = case_row(store, later)
    assert later != first and row["recurrence_of"] == first and row["recurrence_count"] == 1


def test_plate_search_masking_and_repeat_count_through_the_api(client: Any, store: Store, tokens: Headers) -> None:
    a = parked(store, "苏E·D51712", problem="prob-s001")
    close_case(store, a)
    b = parked(store, "苏E·D51712", problem="prob-s002", at=T0 + timedelta(days=2))
    c = parked(store, "皖A·73C39", problem="prob-s003", box=(0.1, 0.1, 0.2, 0.2))

    def found(query: str, role: str = "reviewer") -> set[str]:
        resp = client.get("/cases", params={"plate": query}, headers=tokens[role])
        assert resp.status_code == 200, resp.text
        return {x["case_id"] for x in resp.json()["items"]}

    assert found("苏E·D51712") == found("苏ED51712") == {a, b}  # exact, with or without the dot
    assert found("D517") == {a, b} and found("73C") == {c} and found("A") == {c}  # partial
    assert found("苏E·D51713") == set()
    assert client.get("/cases", params={"plate": "%"}, headers=tokens["reviewer"]).status_code == 422
    # the reader role sees plates masked and may not search by them
    assert client.get("/cases", params={"plate": "D517"}, headers=tokens["reader"]).status_code == 403
    listed = {x["case_id"]: x["plate"] for x in client.get("/cases", headers=tokens["reader"]).json()["items"]}
    assert listed[b]["text"] == "苏E·D5**12" and listed[b]["masked"] is True
    full = client.get(f"/cases/{b}", headers=tokens["dispatcher"]).json()["plate"]
    assert full["text"] == "苏E·D51712" and not full["masked"] and full["colour"] == "blue"
    assert (full["frames"], full["attempts"], full["cases_90d"]) == (3, 4, 2)
    masked = client.get(f"/cases/{b}", headers=tokens["reader"]).json()
    assert "51712" not in str(masked) and masked["plate"]["text"] == "苏E·D5**12"


def test_correcting_a_misread_plate_is_audited_and_limited_to_reviewers(client: Any, store: Store,
                                                                       tokens: Headers) -> None:
    case_id = parked(store, "苏E·D51714", problem="prob-t001")
    url = f"/cases/{case_id}/plate"
    assert client.post(url, json={"text": "苏E·D51712"}, headers=tokens["reader"]).status_code == 403
    assert client.post(url, json={"text": "苏E·D51712"}, headers=tokens["handler"]).status_code == 403
    bad = client.post(url, json={"text": "苏E·D517"}, headers=tokens["reviewer"])
    assert bad.status_code == 422 and "not a Chinese licence plate" in bad.text
    ok = client.post(url, json={"text": "苏ED51712", "note": "4 was a 2 on the close-up"}, headers=tokens["reviewer"])
    assert ok.status_code == 200, ok.text
    assert ok.json()["plate"]["text"] == "苏E·D51712" and ok.json()["plate"]["corrected"]
    detail = client.get(f"/cases/{case_id}", headers=tokens["reviewer"]).json()
    entry = detail["timeline"][-1]
    assert entry["action"] == "plate" and entry["actor"] == "reviewer:reviewer-1"
    assert entry["note"] == "苏E·D51714 → 苏E·D51712: 4 was a 2 on the close-up"
    assert client.get("/cases", params={"plate": "苏E·D51712"}, headers=tokens["reviewer"]).json()["total"] == 1


def test_non_parking_cases_carry_no_plate(client: Any, store: Store, tokens: Headers) -> None:
    event, media = make_event(class_id="exposed_garbage", problem_id="prob-u001")
    case_id = ingest(store, event, media).case_id
    assert client.get(f"/cases/{case_id}", headers=tokens["reviewer"]).json()["plate"] is None


def test_plate_helpers() -> None:
    assert PlateQuery.parse(" 苏e·d51712 ") == PlateQuery("苏ED51712", exact=True)
    assert PlateQuery.parse("d517") == PlateQuery("D517", exact=False)
    assert shown("苏ED51712", "reader") == "苏E·D5**12" and shown("苏ED51712", "handler") == "苏E·D51712"
    assert shown("苏ED51712", None) == "苏E·D5**12" and shown(None, "admin") is None


def test_open311_shows_the_plate_masked_and_the_package_in_full(client: Any, store: Store, tokens: Headers) -> None:
    import io
    import json
    import zipfile

    case_id = parked(store, "苏E·D51712", problem="prob-v001")
    got = client.get(f"/open311/v2/requests/{case_id}.json", headers=tokens["reviewer"]).json()
    assert got[0]["description"] == "车牌 苏E·D5**12"
    assert "51712" not in json.dumps(got, ensure_ascii=False)

    def package_case(role: str) -> dict:
        resp = client.get(f"/cases/{case_id}/evidence-package", headers=tokens[role])
        assert resp.status_code == 200, resp.text
        return json.loads(zipfile.ZipFile(io.BytesIO(resp.content)).read("case.json"))

    assert package_case("reviewer")["plate"]["text"] == "苏E·D51712"  # an enforcement file names the vehicle
    assert package_case("reader")["plate"]["text"] == "苏E·D5**12"
