"""The rule forms' description (hub.fleet.forms) follows the protocol's param models, and the hub's check
names each wrong param at its own path, so the page marks that input."""

from __future__ import annotations

from typing import Any

import pytest

from edge_agent.change.params import ChangeParams
from edge_agent.managed_config import check_for_hub
from hub.fleet import check
from hub.fleet.forms import rule_forms

BODY: dict[str, Any] = {
    "id": "cam-1", "timezone": "Asia/Shanghai", "detect_fps": 2,
    "zones": [{"id": "a", "kind": "no_parking", "polygon": [[0, 0], [1, 0], [1, 1]]}],
    "rules": [{"class_id": "illegal_car_parking", "zones": ["a"], "params": {"min_dwell_s": 30}}]}


def test_forms_describe_each_rule_types_params() -> None:
    forms = rule_forms(ChangeParams)
    dwell = {f["name"]: f for f in forms["params"]["dwell"]}
    assert dwell["min_dwell_s"]["kind"] == "number" and dwell["min_dwell_s"]["gt"] == 0
    assert dwell["stationary_iou"]["lt"] == 1 and dwell["unattended_labels"]["kind"] == "labels"
    assert {f["name"]: f["kind"] for f in forms["params"]["count"]}["min_count"] == "integer"
    crossing = {f["name"]: f for f in forms["params"]["line_crossing"]}["forbid"]
    assert crossing["kind"] == "choice" and crossing["choices"] == ["against_direction", "any"]
    change = {f["name"]: f["kind"] for f in forms["params"]["change"]}
    assert change["min_dwell_s"] == "number" and change["min_area_frac"] == "raw"  # number or per-zone mapping
    parking = next(c for c in forms["classes"] if c["id"] == "illegal_car_parking")
    assert parking["rule"] == "dwell" and parking["name_zh"] and "min_dwell_s" in parking["defaults"]
    assert "change" not in rule_forms()["params"]  # a hub without the agent's change params: JSON for those


@pytest.fixture
def agents_check() -> Any:
    check.use(check_for_hub)
    yield
    check.use(None)


def test_param_problems_are_named_at_their_own_field(agents_check: None) -> None:
    rule = {**BODY["rules"][0], "params": {"min_dwell_s": -1, "stationary_iou": 3}}
    issues = check.check_config({**BODY, "rules": [rule]}, BODY)
    assert [i["path"] for i in issues] == ["rules[0].params.min_dwell_s", "rules[0].params.stationary_iou"]
    assert "greater than 0" in issues[0]["message"] and "less than 1" in issues[1]["message"]
    window = {"days": ["mon"], "start": "07:00", "end": "25:00"}
    issues = check.check_config({**BODY, "rules": [{**BODY["rules"][0], "schedule": {"windows": [window]}}]}, BODY)
    assert [i["path"] for i in issues] == ["rules[0].schedule.windows[0].end"]
    assert check.check_config(BODY, BODY) == []
