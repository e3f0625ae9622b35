"""Camera config versions on the hub: imported from the agent's report, saved on the page, pushed until
answered, re-pushed to an agent that comes back, never re-pushed once rejected; an audit of each step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.fleet import configs
from hub.storage.store import Store
from protocol.push import ManagedBy, PushIssue, PushKind, PushResult

BODY: dict[str, Any] = {"id": "cam-1", "timezone": "Asia/Shanghai", "zones": [{"id": "a", "polygon": [[0, 0], [1, 0],
                                                                                                  [1, 1]]}]}


def result(version: int, *, report: bool = False, accepted: bool = True, current: dict[str, Any] | None = None,
           error: str | None = None) -> PushResult:
    return PushResult(device_id="box-1", kind=PushKind.CAMERA_CONFIG, target="cam-1", version=version,
                      accepted=accepted, report=report, managed_by=ManagedBy.HUB, current=current, error=error,
                      issues=[PushIssue(path="detect_fps", message=error)] if error else [])


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(None, tmp_path / "hub")
    yield s
    s.close()


def due(store: Store) -> list[tuple[str, int]]:
    with store.engine.connect() as conn:
        return [(p.camera_id, p.version) for p in configs.due_pushes(conn, {"box-1"}, resend_after_s=3600)]


def view(store: Store) -> dict[str, Any]:
    with store.engine.connect() as conn:
        return configs.camera_config(conn, "cam-1")


def actions(store: Store) -> list[tuple[int, str]]:
    with store.engine.connect() as conn:
        return [(a["version"], a["action"]) for a in reversed(configs.audit(conn, "cam-1"))]


def test_versions_pushes_answers_and_audit(store: Store) -> None:
    with pytest.raises(configs.UnknownCamera):
        configs.save(store, "cam-1", BODY, actor="admin:chief", base_version=0)
    configs.record_result(store, result(0, report=True, current=BODY))
    assert view(store)["latest"]["status"] == "imported" and due(store) == []

    changed = {**BODY, "detect_fps": 3}
    saved = configs.save(store, "cam-1", changed, actor="admin:chief", base_version=0)
    assert saved["version"] == 1 and saved["changes"] == [{"path": "detect_fps", "new": 3}]
    with pytest.raises(configs.ConfigConflict):  # someone edited version 0 meanwhile
        configs.save(store, "cam-1", BODY, actor="admin:other", base_version=0)
    configs.save(store, "cam-1", {**changed, "detect_fps": 4}, actor="admin:chief", base_version=1)
    assert due(store) == [("cam-1", 2)]  # only the newest goes out
    with store.engine.connect() as conn:
        configs.mark_sent(store, configs.due_pushes(conn, {"box-1"}, 3600))
    assert due(store) == []  # sent, waiting for the answer

    configs.record_result(store, result(0, report=True, current=BODY))  # the agent was away, comes back
    assert due(store) == [("cam-1", 2)]
    configs.record_result(store, result(2))
    v = view(store)
    assert v["running_version"] == 2 and v["latest"]["status"] == "accepted"

    configs.save(store, "cam-1", {**changed, "detect_fps": 100}, actor="admin:chief", base_version=2)
    configs.record_result(store, result(3, accepted=False, error="detect_fps: at most 30"))
    v = view(store)
    assert v["latest"]["status"] == "rejected" and v["latest"]["error"] == "detect_fps: at most 30"
    assert v["latest"]["issues"] == [{"path": "detect_fps", "message": "detect_fps: at most 30"}]
    configs.record_result(store, result(2, report=True, current=changed))
    assert due(store) == [] and view(store)["running_version"] == 2  # a rejected version is not pushed again
    assert actions(store) == [(0, "imported"), (1, "saved"), (2, "saved"), (2, "sent"), (2, "accepted"),
                              (3, "saved"), (3, "rejected")]


def test_the_boxs_own_config_changing_before_any_hub_version_updates_the_import(store: Store) -> None:
    configs.record_result(store, result(0, report=True, current=BODY))
    configs.record_result(store, result(0, report=True, current={**BODY, "detect_fps": 5}))
    assert view(store)["latest"]["body"]["detect_fps"] == 5
    assert actions(store) == [(0, "imported"), (0, "imported")]
