"""Camera config: a good file loads; bad files fail with the file, the field path, the line and why."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge_agent.config import CameraConfig, ConfigError, load_camera_config

GOOD = """\
id: vtest
source: ../shared/fixtures/video/vtest.avi
timezone: Asia/Shanghai
detect_fps: 2
start_time: 2026-03-02T10:00:00
zones:
  - id: np_top_right
    kind: no_parking
    polygon: [[0.80, 0.03], [1.0, 0.03], [1.0, 0.22], [0.80, 0.22]]
  - id: plaza
    kind: plaza
    polygon: [[0.0, 0.30], [0.75, 0.25], [1.0, 0.5], [1.0, 0.85], [0.45, 0.62], [0.0, 0.42]]
rules:
  - class_id: illegal_car_parking
    zones: [np_top_right]
    params: {min_dwell_s: 30}
"""


def write(tmp_path: Path, text: str, name: str = "cam.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_camera_config(path)
    assert str(path) in str(info.value)
    return info.value


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    cfg = load_camera_config(write(tmp_path, GOOD))
    assert cfg.id == "vtest" and cfg.detect_fps == 2 and cfg.model == "coco-nanodet"
    assert [z.id for z in cfg.zones] == ["np_top_right", "plaza"]
    assert cfg.rules[0].params == {"min_dwell_s": 30}
    assert cfg.motion.enabled and cfg.tracker.lost_grace_s > cfg.motion.recheck_interval_s
    # A naive start time is local to the camera: 10:00 in Shanghai is 02:00 UTC.
    assert cfg.start_epoch() == datetime(2026, 3, 2, 10, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    assert cfg.sample_fps() == 2


def test_device_index_and_rtsp_sources(tmp_path: Path) -> None:
    assert load_camera_config(write(tmp_path, GOOD.replace("source: ../shared/fixtures/video/vtest.avi",
                                                           "source: 0"))).source == 0
    rtsp = GOOD.replace("source: ../shared/fixtures/video/vtest.avi", "source: rtsp://u:p@10.0.0.5/s1")
    assert load_camera_config(write(tmp_path, rtsp)).source == "rtsp://u:p@10.0.0.5/s1"


def test_bad_polygon_names_field_and_line(tmp_path: Path) -> None:
    bad = GOOD.replace("[[0.0, 0.30], [0.75, 0.25], [1.0, 0.5]", "[[0.0, 0.30], [1.75, 0.25], [1.0, 0.5]")
    err = error_of(tmp_path, bad)
    [issue] = err.issues
    assert issue.path == "zones[1].polygon" and issue.line == 12
    assert "outside 0-1" in issue.message
    assert "cam.yaml:12: zones[1].polygon: point 1 (1.75, 0.25) is outside 0-1" in str(err)


def test_unknown_key_is_a_typo_not_ignored(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("detect_fps: 2", "detect_fsp: 2"))
    assert [(i.path, i.line) for i in err.issues] == [("detect_fsp", 4)]
    assert "Extra inputs are not permitted" in err.issues[0].message


def test_out_of_bounds_value_shows_it(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("detect_fps: 2", "detect_fps: 0"))
    assert err.issues[0].path == "detect_fps" and "greater than 0" in err.issues[0].message
    assert "(got 0)" in err.issues[0].message


def test_missing_required_field_and_bad_timezone_reported_together(tmp_path: Path) -> None:
    text = GOOD.replace("timezone: Asia/Shanghai\n", "timezone: Asia/Shangai\n").replace("id: vtest\n", "")
    err = error_of(tmp_path, text)
    by_path = {i.path: i for i in err.issues}
    assert set(by_path) == {"id", "timezone"}
    assert "Field required" in by_path["id"].message and by_path["id"].line is None
    assert "unknown IANA timezone 'Asia/Shangai'" in by_path["timezone"].message
    assert by_path["timezone"].line == 2


def test_rule_with_unknown_zone(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("zones: [np_top_right]", "zones: [np_top_rigth]"))
    [issue] = err.issues
    assert issue.path == "rules[0].zones[0]" and issue.line == 15
    assert "unknown zone 'np_top_rigth'" in issue.message and "np_top_right" in issue.message


def test_unknown_problem_class(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("class_id: illegal_car_parking", "class_id: illegal_parking"))
    assert err.issues[0].path == "rules[0].class_id" and "unknown problem class" in err.issues[0].message


def test_duplicate_zone_ids(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("id: plaza", "id: np_top_right"))
    assert [i.path for i in err.issues] == ["zones[1].id"]
    assert "used by zones[0]" in err.issues[0].message


def test_grace_shorter_than_recheck_is_refused(tmp_path: Path) -> None:
    text = GOOD + "tracker: {lost_grace_s: 3}\nmotion: {recheck_interval_s: 5}\n"
    err = error_of(tmp_path, text)
    assert err.issues[0].path == "tracker.lost_grace_s" and "recheck_interval_s" in err.issues[0].message


def test_line_rule_on_polygon_zone(tmp_path: Path) -> None:
    text = GOOD + "  - {class_id: wrong_way_vehicle, zones: [plaza]}\n"
    err = error_of(tmp_path, text)
    assert err.issues[0].path == "rules[1].zones[0]" and "needs a line zone" in err.issues[0].message


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("detect_fps: 2", "detect_fps: [2"))
    assert err.issues[0].line is not None and "not valid YAML" in err.issues[0].message


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    assert "must be a YAML mapping" in str(error_of(tmp_path, "- just\n- a list\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_camera_config(tmp_path / "absent.yaml")


def test_direct_construction_still_runs_cross_checks() -> None:
    with pytest.raises(ValueError, match="unknown zone"):
        CameraConfig.model_validate({"id": "c", "source": 0, "timezone": "UTC",
                                     "rules": [{"class_id": "illegal_car_parking", "zones": ["nowhere"]}]})


def test_detector_sessions_default_to_one_per_core_and_are_validated(tmp_path: Path) -> None:
    from cityeye.commands.edge import detector_layout
    from edge_agent.detect import detector_layout as layout

    cfg = load_camera_config(write(tmp_path, GOOD))
    assert cfg.detector_sessions is None and cfg.detector_threads is None
    assert layout(None, None, cores=2) == (2, 1)  # the faster arrangement in bench/edge.py
    assert layout(None, None, cores=1) == (1, None)
    assert layout(None, 2, cores=2) == (1, 2)  # threads set alone: one session, as before
    assert layout(3, None, cores=2) == (3, 1) and layout(1, None, cores=2) == (1, None)
    two = load_camera_config(write(tmp_path, GOOD + "detector_sessions: 2\ndetector_threads: 1\n"))
    assert detector_layout([cfg, two]) == (2, 1)
    error = error_of(tmp_path, GOOD + "detector_sessions: 0\n")
    assert "detector_sessions" in str(error) and "greater than or equal to 1" in str(error)
