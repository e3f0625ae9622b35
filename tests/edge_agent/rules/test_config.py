"""Rule configs and the engine reject mistakes with messages that name the field, rule and zone."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge_agent.rules import RuleConfig, RuleEngine, check_rules_against_zones
from edge_agent.zones import ZoneConfig
from protocol.catalog import default_catalog
from tests.edge_agent.rules.rules_helpers import FRAME, SQUARE, engine


@pytest.mark.parametrize(("cfg", "field", "message"), [
    ({"class_id": "illegal_parking", "zones": ["z"]}, "class_id", "unknown problem class"),
    ({"class_id": "illegal_car_parking", "zones": []}, "zones", "at least 1"),
    ({"class_id": "illegal_car_parking", "zones": ["z", "z"]}, "zones", "repeat"),
    ({"class_id": "illegal_car_parking", "zones": "z", "params": {"min_dwell_s": -5}}, "params",
     "params.min_dwell_s: Input should be greater than 0"),
    ({"class_id": "illegal_car_parking", "zones": "z", "params": {"min_count": 5}}, "params",
     "params.min_count: Extra inputs"),
    ({"class_id": "crowd_gathering", "zones": "z", "params": {"min_count": "many"}}, "params",
     "params.min_count: Input should be a valid integer"),
    ({"class_id": "illegal_car_parking", "zones": "z", "cooldown_s": -1}, "cooldown_s", "greater than or equal"),
    ({"class_id": "illegal_car_parking", "zones": "z", "min_score": 2}, "min_score", "less than or equal"),
    ({"class_id": "illegal_car_parking", "zones": "z", "schedule": {"mode": "sometimes", "windows": []}},
     "schedule.mode", "Input should be 'active' or 'allowed'"),
    ({"class_id": "illegal_car_parking", "zones": "z", "zone": "z"}, "zone", "Extra inputs"),
])
def test_rule_config_errors_name_the_field(cfg: dict, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        RuleConfig.model_validate(cfg)
    err = info.value.errors()[0]
    assert ".".join(str(p) for p in err["loc"]) == field
    assert message in err["msg"]


def test_defaults_and_rule_id() -> None:
    cfg = RuleConfig.model_validate({"class_id": "illegal_car_parking", "zones": "np"})
    assert cfg.zones == ["np"] and cfg.rule_id == "illegal_car_parking@np" and cfg.schedule is None
    assert cfg.typed_params().min_dwell_s == 300  # type: ignore[attr-defined]


def test_engine_checks_zone_references_and_shapes() -> None:
    zones = [ZoneConfig(id="np", polygon=SQUARE), ZoneConfig(id="lane", line=[(0, 0.5), (1, 0.5)])]
    catalog = default_catalog()
    with pytest.raises(ValueError, match="rule 'illegal_car_parking@nowhere' refers to unknown zone 'nowhere'"):
        check_rules_against_zones([RuleConfig(class_id="illegal_car_parking", zones=["nowhere"])], zones, catalog)
    with pytest.raises(ValueError, match="needs a polygon zone"):
        check_rules_against_zones([RuleConfig(class_id="illegal_car_parking", zones=["lane"])], zones, catalog)
    with pytest.raises(ValueError, match="needs a line zone"):
        check_rules_against_zones([RuleConfig(class_id="wrong_way_vehicle", zones=["np"])], zones, catalog)
    with pytest.raises(ValueError, match="two rules have id"):
        check_rules_against_zones([RuleConfig(class_id="illegal_car_parking", zones=["np"])] * 2, zones, catalog)
    with pytest.raises(ValueError, match="allowed_direction any"):
        RuleEngine(catalog, zones, [RuleConfig(class_id="wrong_way_vehicle", zones=["lane"])], "c", FRAME)


def test_describe_classes_and_inactive_rules() -> None:
    eng = engine("exposed_garbage")
    active, inactive = eng.describe_classes(["person", "car"])
    assert "illegal_car_parking" in {c.id for c in active}
    assert ("exposed_garbage", ("garbage_pile",)) in {(i.problem_class.id, i.missing_labels) for i in inactive}
    assert eng.inactive_rules(["person", "car"]) == [("exposed_garbage@z", ("garbage_pile",))]


def test_disabled_rule_builds_nothing() -> None:
    assert engine("illegal_car_parking", enabled=False).rules == []
