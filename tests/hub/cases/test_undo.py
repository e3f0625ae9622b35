"""Undo of a review decision: the actor's own confirm or void, within the grace period, reversed with an
audit row; everything else refused with the reason. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from hub.auth.tokens import create_token
from hub.cases.lifecycle import Role
from hub.storage import db, schema
from hub.storage.store import Store
from tests.hub.cases.test_transitions_api import Headers, act, open_case


def test_undo_of_a_confirm_restores_status_deadline_and_filing_time_and_is_audited(
        client: Any, store: Store, tokens: Headers) -> None:
    case_id = open_case(store, problem_id="prob-undo01")
    before = client.get(f"/cases/{case_id}", headers=tokens["reviewer"]).json()
    filed = act(client, tokens, "reviewer", case_id, "confirm").json()
    assert filed["status"] == "filed" and filed["filed_at"] and filed["deadline_at"] != before["deadline_at"]

    undone = client.post(f"/cases/{case_id}/undo", headers=tokens["reviewer"])
    assert undone.status_code == 200, undone.text
    after = client.get(f"/cases/{case_id}", headers=tokens["reviewer"]).json()
    for key in ("status", "deadline_at", "filed_at", "unit", "routed_unit"):
        assert after[key] == before[key], key
    last = after["timeline"][-1]
    assert (last["action"], last["from_status"], last["to_status"], last["actor"]) == (
        "undo", "filed", "pending_review", "reviewer:reviewer-1")
    assert last["note"].startswith("undo of confirm")
    again = client.post(f"/cases/{case_id}/undo", headers=tokens["reviewer"])  # the last change is the undo itself
    assert again.status_code == 409 and "nothing to undo" in again.json()["detail"]


def test_undo_of_a_void_gives_the_case_back_to_review(client: Any, store: Store, tokens: Headers) -> None:
    case_id = open_case(store, problem_id="prob-undo02")
    before = client.get(f"/cases/{case_id}", headers=tokens["reviewer"]).json()
    assert act(client, tokens, "reviewer", case_id, "void", note="误报").json()["deadline_at"] is None
    assert client.post(f"/cases/{case_id}/undo", headers=tokens["reviewer"]).json()["status"] == "pending_review"
    assert client.get(f"/cases/{case_id}", headers=tokens["reviewer"]).json()["deadline_at"] == before["deadline_at"]


def test_only_the_actor_within_the_grace_period_and_only_review_decisions(
        client: Any, store: Store, tokens: Headers) -> None:
    case_id = open_case(store, problem_id="prob-undo03")
    act(client, tokens, "reviewer", case_id, "confirm")
    other = {"Authorization": f"Bearer {create_token(store, 'reviewer-2', Role.REVIEWER)[1]}"}
    refused = client.post(f"/cases/{case_id}/undo", headers=other)
    assert refused.status_code == 403 and "only reviewer:reviewer-1" in refused.json()["detail"]
    assert client.post(f"/cases/{case_id}/undo", headers=tokens["reader"]).status_code == 403  # readers never

    dispatched = act(client, tokens, "dispatcher", case_id, "dispatch")
    assert dispatched.status_code == 200, dispatched.text
    late = client.post(f"/cases/{case_id}/undo", headers=tokens["dispatcher"])
    assert late.status_code == 409 and "the last change of this case was dispatch" in late.json()["detail"]

    old = open_case(store, problem_id="prob-undo04", camera_id="cam-9")
    act(client, tokens, "reviewer", old, "confirm")
    past = db.utcnow() - timedelta(seconds=61)  # the default grace is 60 s
    t = schema.transitions
    store.write(lambda conn: conn.execute(update(t).where(t.c.case_id == old, t.c.action == "confirm").values(at=past)))
    expired = client.post(f"/cases/{old}/undo", headers=tokens["reviewer"])
    assert expired.status_code == 409 and "undo period (60 s) is over" in expired.json()["detail"]
    assert client.get(f"/cases/{old}", headers=tokens["reviewer"]).json()["status"] == "filed"


def test_cases_show_the_unit_routing_would_pick_until_dispatch(client: Any, store: Store, tokens: Headers) -> None:
    east = open_case(store, problem_id="prob-route1", camera_id="cam-1")
    other = open_case(store, problem_id="prob-route2", camera_id="cam-7")
    listed = {c["case_id"]: c for c in client.get("/cases", headers=tokens["reader"]).json()["items"]}
    assert (listed[east]["unit"], listed[east]["routed_unit"]) == (None, "district-east")
    assert listed[other]["routed_unit"] == "sanitation"  # the default unit
    act(client, tokens, "reviewer", east, "confirm")
    sent = act(client, tokens, "dispatcher", east, "dispatch").json()
    assert (sent["unit"], sent["routed_unit"]) == ("district-east", None)
