"""Change-reference retakes on the hub (hub.fleet.retakes): which transitions queue one, what an offline
agent gets when it comes back, what a newer retake supersedes, and how answers and reports are recorded.
The end-to-end run with a real agent is tests/edge_agent/change/test_retake_e2e.py."""

from __future__ import annotations

from typing import Any

from hub.cases.lifecycle import Action, Role
from hub.cases.transitions import transition
from hub.devices.hubkeys import HubSigningKey
from hub.fleet import retakes
from hub.fleet.link import FleetLink
from hub.storage import db, schema
from protocol.messages import ReferenceRetake
from protocol.push import ManagedBy, PushKind, PushResult
from tests.hub.fleet.test_link import first_push_on_connect

REVIEWER: dict[str, Any] = {"actor": "reviewer:li", "role": Role.REVIEWER}


def handled_case(store: Any, case_id: str, labels: list[str], camera_id: str = "cam-1") -> None:
    """A handled case of `camera_id`'s zone "walk" with one event carrying `labels`."""
    now = db.utcnow()

    def tx(conn: Any) -> None:
        conn.execute(schema.cases.insert().values(
            case_id=case_id, class_id="exposed_garbage", status="handled", source="edge", camera_id=camera_id,
            zone="walk", box={"x1": 0.5, "y1": 0.4, "x2": 0.6, "y2": 0.5}, unit="sanitation", first_seen=now,
            last_seen=now, created_at=now, updated_at=now))
        conn.execute(schema.events.insert().values(
            device_id="box-1", event_id=f"ev-{case_id}", seq=1, problem_id=f"p-{case_id}", camera_id=camera_id,
            class_id="exposed_garbage", state="opened", observed_at=now, received_at=now,
            payload={"labels": labels}, manifest=b"{}", signature=b"", case_id=case_id))

    store.write(tx)


def answer(link: FleetLink, version: int, *, report: bool = False, accepted: bool = True) -> None:
    link.on_result(PushResult(device_id="box-1", kind=PushKind.CHANGE_REFERENCE, target="cam-1", version=version,
                              accepted=accepted, report=report, managed_by=ManagedBy.HUB))


def statuses(store: Any) -> dict[int, str]:
    return {r["version"]: r["status"] for r in retakes.retakes_of(store, "cam-1")}


def test_verify_of_a_change_case_queues_a_signed_retake_an_offline_agent_gets_on_reconnect(store: Any) -> None:
    key = HubSigningKey.load_or_create(store.data_dir)
    handled_case(store, "c-change", ["change"])
    handled_case(store, "c-detector", ["person"])
    transition(store, "c-detector", Action.VERIFY, **REVIEWER)
    transition(store, "c-change", Action.VERIFY, **REVIEWER)
    assert statuses(store) == {1: "pending"}  # the detector's case is not a change case: nothing to re-take
    link = FleetLink(store, key)
    push = first_push_on_connect(link, key)  # the agent was offline: the retake waited for it
    assert (push.kind, push.target, push.version, push.issued_by) == (PushKind.CHANGE_REFERENCE, "cam-1", 1,
                                                                      "reviewer:li")
    body = ReferenceRetake.model_validate(push.body)
    assert (body.camera_id, body.zone, body.case_id) == ("cam-1", "walk", "c-change")
    assert body.box is not None and (body.box.x1, body.box.y2) == (0.5, 0.5)
    assert statuses(store) == {1: "sent"}
    assert link.outgoing(now=2.0) == []  # sent, waiting for the answer
    answer(link, 1)
    assert statuses(store) == {1: "accepted"}


def test_the_api_lists_a_cameras_retakes_to_staff(store: Any, client: Any, tokens: dict[str, dict[str, str]]) -> None:
    handled_case(store, "c-api", ["change"])
    transition(store, "c-api", Action.VERIFY, **REVIEWER)
    (row,) = client.get("/cameras/cam-1/reference-retakes", headers=tokens["reader"]).json()
    assert (row["version"], row["zone"], row["case_id"], row["status"]) == (1, "walk", "c-api", "pending")
    assert client.get("/cameras/cam-1/reference-retakes").status_code == 401


def test_a_newer_retake_of_the_same_case_supersedes_an_unsent_one_and_reports_resend_what_was_missed(
        store: Any) -> None:
    handled_case(store, "c-1", ["change"])
    transition(store, "c-1", Action.VERIFY, **REVIEWER)
    transition(store, "c-1", Action.REWORK, **REVIEWER, note="still a bag there")
    assert statuses(store) == {1: "pending"}  # rework is not "clear": nothing new
    store.write(lambda conn: conn.execute(schema.cases.update().where(schema.cases.c.case_id == "c-1")
                                          .values(status="handled")))
    transition(store, "c-1", Action.VERIFY, **REVIEWER)
    assert statuses(store) == {1: "superseded", 2: "pending"}
    transition(store, "c-1", Action.CLOSE, **REVIEWER)
    assert statuses(store) == {1: "superseded", 2: "pending"}  # closing follows the verify: no second retake
    link = FleetLink(store, HubSigningKey.load_or_create(store.data_dir), resend_after_s=3600)
    link.seen("box-1", b"peer-1")
    assert len(link.outgoing(now=1.0)) == 1 and statuses(store)[2] == "sent"
    answer(link, 0, report=True)  # the agent restarted before answering: it has applied none
    assert statuses(store)[2] == "pending"
    assert len(link.outgoing(now=2.0)) == 1
    answer(link, 2, report=True)  # applied, its answer lost: the report settles it
    assert statuses(store)[2] == "accepted"
    answer(link, 2, accepted=False)  # a late duplicate answer changes nothing
    assert statuses(store)[2] == "accepted"


def test_the_cameras_own_clear_verifies_and_re_takes(store: Any) -> None:
    """auto_verify (the edge reported `cleared` on a handled case) goes through the ingest transaction."""
    from hub.cases.dedup import CaseRow, Observation
    from hub.cases.transitions import AuditLog, mark_cleared
    from protocol.messages import NormBox, ProblemState

    handled_case(store, "c-auto", ["change"])
    now = db.utcnow()
    case = CaseRow("c-auto", "handled", "exposed_garbage", "cam-1", "walk", NormBox(x1=0.5, y1=0.4, x2=0.6, y2=0.5),
                   None, now)
    obs = Observation("exposed_garbage", ProblemState.CLEARED, now, now, "edge", camera_id="cam-1", zone="walk")
    store.write(lambda conn: mark_cleared(conn, case, obs, now, "box-1", AuditLog(), lambda *_: None))
    (row,) = retakes.retakes_of(store, "cam-1")
    assert (row["status"], row["created_by"], row["box"]["x1"]) == ("pending", "edge:box-1", 0.5)
