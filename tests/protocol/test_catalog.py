"""The packaged catalog covers the taxonomy, validates its params, and splits classes by model labels."""

from __future__ import annotations

import re

import pytest

from protocol.catalog import (
    PARAMS_BY_RULE,
    Catalog,
    DwellParams,
    Intake,
    RuleType,
    default_catalog,
    load_catalog,
)
from tests.conftest import SHARED_FIXTURES

COCO80 = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
]


def _entry(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "x_class", "code": "0505", "name_zh": "测试", "name_en": "test", "family": "street_order",
        "coco": True, "labels": ["car"], "rule": "dwell", "params": {"min_dwell_s": 10},
        "zone_kinds": ["no_parking"], "sla_hours": 2,
    }
    base.update(over)
    return base


def test_packaged_catalog_loads_with_unique_ids() -> None:
    catalog = load_catalog()
    assert len(catalog) == 72
    assert len([c for c in catalog if c.intake is Intake.CAMERA]) == 70  # the taxonomy's rows
    assert len(set(catalog.ids())) == len(catalog)
    assert [c.id for c in catalog if c.intake is Intake.DEVICE] == ["camera_view_shifted"]
    assert default_catalog() is default_catalog()


def test_every_rule_type_is_used_and_every_default_param_set_is_valid() -> None:
    cameras = [c for c in default_catalog() if c.intake is Intake.CAMERA]
    assert {c.rule for c in cameras} == set(RuleType)
    for c in cameras:
        assert c.rule is not None and isinstance(c.typed_params(), PARAMS_BY_RULE[c.rule])


def test_coco_classes_are_exactly_the_ones_coco_labels_drive() -> None:
    active, inactive = default_catalog().active_for(COCO80)
    assert {c.id for c in active} == {c.id for c in default_catalog() if c.coco}
    assert len(active) == 21
    assert all(not i.problem_class.coco and i.missing_labels for i in inactive)


def test_inactive_classes_name_the_missing_labels() -> None:
    catalog = default_catalog()
    _, inactive = catalog.active_for(["person"])
    missing = {i.problem_class.id: i.missing_labels for i in inactive}
    # A co-occurrence needs its companions too: person alone does not make a stall.
    assert missing["stall_occupying_road"] == ("chair", "dining table", "umbrella")
    assert missing["illegal_car_parking"] == ("bus", "car", "motorcycle", "truck")
    active, _ = catalog.active_for(["person"])
    assert "crowd_gathering" in {c.id for c in active}


@pytest.mark.skipif(not (SHARED_FIXTURES.parent / "domain" / "taxonomy.md").is_file(),
                    reason="../shared/domain/taxonomy.md is absent (a clone without ../shared)")
def test_catalog_matches_taxonomy_rows() -> None:
    text = (SHARED_FIXTURES.parent / "domain" / "taxonomy.md").read_text(encoding="utf-8")
    rows = [r for r in text.splitlines() if re.match(r"^\| (\*?\d|—)", r)]
    names_zh = {r.split("|")[2].strip() for r in rows}
    coco_zh = {r.split("|")[2].strip() for r in rows if "COCO" in r.split("|")[5]}
    cameras = [c for c in default_catalog() if c.intake is Intake.CAMERA]  # sensor classes are extra
    assert {c.name_zh for c in cameras} == names_zh
    assert {c.name_zh for c in cameras if c.coco} == coco_zh


def test_sensor_classes_have_no_camera_parts_and_no_model_drives_them() -> None:
    methane = default_catalog().get("methane_over_threshold")
    assert methane.intake is Intake.SENSOR and methane.family.value == "sensor"
    assert methane.labels == [] and methane.rule is None and not methane.coco
    with pytest.raises(ValueError, match="reported by sensors, not by a camera rule"):
        methane.typed_params()  # so a camera rule config naming it is refused
    active, inactive = default_catalog().active_for([*COCO80, "gas"])
    assert "methane_over_threshold" not in {c.id for c in active} | {i.problem_class.id for i in inactive}
    assert methane.open311().group == "sensor"
    sensor = {"id": "h2s_alarm", "name_zh": "硫化氢", "name_en": "H2S", "family": "sensor", "intake": "sensor",
              "coco": False, "sla_hours": 1}
    Catalog.model_validate({"version": 1, "classes": [sensor]})
    with pytest.raises(ValueError, match="a sensor class has no labels, rule"):
        Catalog.model_validate({"version": 1, "classes": [{**sensor, "labels": ["gas"], "rule": "presence"}]})
    with pytest.raises(ValueError, match="a camera class needs labels, rule, zone_kinds"):
        Catalog.model_validate({"version": 1, "classes": [{**sensor, "intake": "camera"}]})


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate class ids"):
        Catalog.model_validate({"version": 1, "classes": [_entry(), _entry()]})


def test_params_are_checked_against_the_rule_type_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"params\.min_count: Extra inputs"):
        Catalog.model_validate({"version": 1, "classes": [_entry(params={"min_count": 3})]})
    with pytest.raises(ValueError, match=r"params\.min_dwell_s: Input should be greater than 0"):
        Catalog.model_validate({"version": 1, "classes": [_entry(params={"min_dwell_s": 0})]})
    with pytest.raises(ValueError, match=r"params\.anchor_labels: Field required"):
        Catalog.model_validate({"version": 1, "classes": [_entry(rule="co_occurrence")]})


def test_params_may_not_name_labels_outside_the_class() -> None:
    with pytest.raises(ValueError, match="not in labels"):
        Catalog.model_validate({"version": 1, "classes": [_entry(params={"labels": ["bus"]})]})


def test_overrides_merge_with_defaults() -> None:
    params = default_catalog().get("illegal_car_parking").typed_params({"min_dwell_s": 30})
    assert isinstance(params, DwellParams)
    assert params.min_dwell_s == 30
    assert params.clear_after_s == 30.0


def test_open311_service_fields() -> None:
    service = default_catalog().get("exposed_garbage").open311()
    assert service.service_code == "exposed_garbage"
    assert "暴露垃圾" in service.service_name
    assert service.group == "city_appearance"
    assert service.type == "realtime"


def test_load_catalog_error_names_the_file(tmp_path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("version: 1\nclasses:\n  - {id: Bad Id}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"c\.yaml: classes\.0\.id"):
        load_catalog(bad)
