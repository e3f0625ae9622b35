"""The case lifecycle through the REST API, refused transitions and roles, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from hub.cases.lifecycle import RULES, Action, Role
from hub.storage import db, schema
from hub.storage.store import Store
from protocol.messages import ProblemState
from tests.hub.hubfactory import T0, ingest, jpeg_bytes, make_event

Headers = dict[str, dict[str, str]]


def open_case(store: Store, **kw: Any) -> str:
    event, media = make_event(**kw)
    case_id = ingest(store, event, media).case_id
    assert case_id
    return case_id


def act(client: Any, tokens: Headers, role: str, case_id: str, action: str, **body: Any) -> Any:
    return client.post(f"/cases/{case_id}/{action}", json=body, headers=tokens[role])


def upload_photo(client: Any, tokens: Headers) -> str:
    resp = client.post("/evidence", files={"file": ("fixed.jpg", jpeg_bytes("fixed"), "image/jpeg")},
                       headers=tokens["handler"])
    assert resp.status_code == 201, resp.text
    return resp.json()["sha256"]


def test_whole_loop_with_auto_verify(client: Any, store: Store, tokens: Headers) -> None:
    case_id = open_case(store, problem_id="prob-loop01")
    detail = client.get(f"/cases/{case_id}", headers=tokens["reviewer"]).json()
    assert detail["status"] == "pending_review" and detail["deadline_at"]
    assert detail["allowed_actions"] == ["confirm", "void"]
    sha = detail["events"][0]["media"][0]["sha256"]
    img = client.get(f"/evidence/{sha}", headers=tokens["reader"])
    assert img.status_code == 200 and img.content.startswith(b"\xff\xd8")
    assert client.get(f"/cases/{case_id}/image", headers=tokens["reader"]).content == img.content

    assert act(client, tokens, "reviewer", case_id, "confirm").json()["status"] == "filed"
    dispatched = act(client, tokens, "dispatcher", case_id, "dispatch").json()
    assert dispatched["status"] == "dispatched" and dispatched["unit"] == "district-east"  # routed by camera
    assert act(client, tokens, "handler", case_id, "start").json()["status"] == "in_progress"
    photo = upload_photo(client, tokens)
    handled = act(client, tokens, "handler", case_id, "handle", note="car towed", photo_sha256=photo)
    assert handled.status_code == 200 and handled.json()["status"] == "handled"

    cleared, media = make_event(problem_id="prob-loop01", state=ProblemState.CLEARED, at=T0 + timedelta(hours=1))
    assert ingest(store, cleared, media).case_id == case_id
    assert client.get(f"/cases/{case_id}", headers=tokens["reader"]).json()["status"] == "verified"
    assert act(client, tokens, "reviewer", case_id, "close").json()["status"] == "closed"

    timeline = client.get(f"/cases/{case_id}", headers=tokens["reader"]).json()["timeline"]
    assert [(t["action"], t["to_status"]) for t in timeline] == [
        ("open", "pending_review"), ("confirm", "filed"), ("dispatch", "dispatched"), ("start", "in_progress"),
        ("handle", "handled"), ("auto_verify", "verified"), ("close", "closed"),
    ]
    assert timeline[1]["actor"] == "reviewer:reviewer-1" and timeline[4]["photo_sha256"] == photo
    assert timeline[5]["actor"] == "edge:box-1"

    reopened = act(client, tokens, "reviewer", case_id, "reopen", note="came back the same day")
    assert reopened.json()["status"] == "filed" and reopened.json()["closed_at"] is None


def test_return_rework_and_inspector_verify(client: Any, store: Store, tokens: Headers) -> None:
    case_id = open_case(store, camera_id="cam-9")  # no unit rule for cam-9: the default unit
    act(client, tokens, "reviewer", case_id, "confirm")
    assert act(client, tokens, "dispatcher", case_id, "dispatch").json()["unit"] == "sanitation"
    refused = act(client, tokens, "handler", case_id, "return")
    assert refused.status_code == 422 and "reason" in refused.json()["detail"]
    back = act(client, tokens, "handler", case_id, "return", note="not our street").json()
    assert back["status"] == "filed" and back["unit"] is None
    redispatched = act(client, tokens, "dispatcher", case_id, "dispatch", unit="district-east").json()
    assert redispatched["unit"] == "district-east"
    bad_unit = act(client, tokens, "dispatcher", case_id, "dispatch", unit="nobody")
    assert bad_unit.status_code == 409  # already dispatched: the status is checked first
    act(client, tokens, "handler", case_id, "start")
    act(client, tokens, "handler", case_id, "handle", note="moved", photo_sha256=upload_photo(client, tokens))
    rework = act(client, tokens, "reviewer", case_id, "rework", note="still there")
    assert rework.json()["status"] == "dispatched" and rework.json()["unit"] == "district-east"
    act(client, tokens, "handler", case_id, "start")
    act(client, tokens, "handler", case_id, "handle", note="moved", photo_sha256=upload_photo(client, tokens))
    assert act(client, tokens, "reviewer", case_id, "verify").json()["status"] == "verified"


def test_refused_transitions_say_why(client: Any, store: Store, tokens: Headers) -> None:
    case_id = open_case(store)
    close = act(client, tokens, "admin", case_id, "close")
    assert close.status_code == 409
    assert close.json()["detail"] == "cannot close a case that is pending_review; close applies to: verified"
    assert act(client, tokens, "reviewer", case_id, "void").status_code == 422  # no reason
    assert act(client, tokens, "reviewer", case_id, "void", note="shadow, not a car").json()["status"] == "void"
    assert act(client, tokens, "reviewer", case_id, "confirm").status_code == 409
    assert act(client, tokens, "reviewer", "C-nope", "confirm").status_code == 404
    assert client.post(f"/cases/{case_id}/explode", headers=tokens["admin"]).status_code == 422
    other = open_case(store, problem_id="prob-other01", zone="np-7")
    act(client, tokens, "reviewer", other, "confirm")
    act(client, tokens, "dispatcher", other, "dispatch")
    act(client, tokens, "handler", other, "start")
    no_photo = act(client, tokens, "handler", other, "handle", note="done")
    assert no_photo.status_code == 422 and "photo" in no_photo.json()["detail"]
    fake = act(client, tokens, "handler", other, "handle", note="done", photo_sha256="ab" * 32)
    assert fake.status_code == 422 and "not an uploaded evidence file" in fake.json()["detail"]
    bad = client.post(f"/cases/{other}/handle", json={"note": "x", "evil": 1}, headers=tokens["handler"])
    assert bad.status_code == 422 and "evil" in bad.text


@pytest.mark.parametrize("action", list(Action))
def test_every_action_refuses_other_roles(client: Any, store: Store, tokens: Headers, action: Action) -> None:
    case_id = open_case(store)
    for role in Role:
        if role in RULES[action].roles:
            continue
        resp = act(client, tokens, role.value, case_id, action.value, note="n", photo_sha256="ab" * 32)
        assert resp.status_code == 403, (role, action, resp.text)
        assert role.value in resp.json()["detail"]


def test_unauthenticated_and_role_refusals(client: Any, tokens: Headers) -> None:
    for route in client.app.routes:
        methods = getattr(route, "methods", set()) - {"HEAD", "OPTIONS"}
        if not hasattr(route, "dependant") or route.path in ("/health", "/metrics"):
            continue
        path = route.path.replace("{sha256}", "ab" * 32).replace("{", "").replace("}", "")
        for method in methods:
            resp = client.request(method, path)
            assert resp.status_code == 401, (method, path, resp.status_code)
    wrong = client.get("/cases", headers={"Authorization": "Bearer cey_forged"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert client.get("/health").status_code == 200 and client.get("/metrics").status_code == 200
    for role in ("reader", "reviewer", "dispatcher", "handler", "sensor"):
        assert client.get("/tokens", headers=tokens[role]).status_code == 403
        assert client.get("/webhooks", headers=tokens[role]).status_code == 403
    assert client.post("/evidence", files={"file": ("a.jpg", b"\xff\xd8x", "image/jpeg")},
                       headers=tokens["reader"]).status_code == 403
    assert client.post("/intake/sensor", json={}, headers=tokens["reader"]).status_code == 403
    assert client.get("/cases", headers=tokens["sensor"]).status_code == 403
    assert client.get("/cases", headers=tokens["reader"]).status_code == 200


def test_routes_without_access_policy_are_refused(store: Store, hub_settings: Any) -> None:
    from fastapi.testclient import TestClient

    from hub.app import create_app

    app = create_app(hub_settings, store=store, background=False)
    app.add_api_route("/forgotten", lambda: {"secret": 1})
    with TestClient(app) as c:
        resp = c.get("/forgotten")
    assert resp.status_code == 403 and "no access policy" in resp.json()["detail"]


def test_overdue_pool_and_filters(client: Any, store: Store, tokens: Headers) -> None:
    late = open_case(store, problem_id="prob-late001")
    fresh = open_case(store, problem_id="prob-fresh01", camera_id="cam-2")
    store.write(lambda conn: conn.execute(schema.cases.update().where(schema.cases.c.case_id == late)
                                          .values(deadline_at=db.utcnow() - timedelta(hours=1))))
    pool = client.get("/cases", params={"overdue": "true"}, headers=tokens["reader"]).json()
    assert [c["case_id"] for c in pool["items"]] == [late] and pool["items"][0]["overdue"]
    by_cam = client.get("/cases", params={"camera_id": "cam-2"}, headers=tokens["reader"]).json()
    assert [c["case_id"] for c in by_cam["items"]] == [fresh]
    page = client.get("/cases", params={"limit": 1, "sort": "created_at", "status": ["pending_review"]},
                      headers=tokens["reader"]).json()
    assert page["total"] == 2 and len(page["items"]) == 1
    assert client.get("/cases", params={"bbox": "1,2,3"}, headers=tokens["reader"]).status_code == 422
    assert client.get("/cases", params={"sort": "secret"}, headers=tokens["reader"]).status_code == 422
    assert client.get("/cases", params={"since": "2026-01-01T00:00:00"}, headers=tokens["reader"]).status_code == 422
