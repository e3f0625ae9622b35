"""Few-shot state heads in the pipeline, on real vtest.avi frames: a head taught "garbage" from crops
(the real litter of the clip set down on the plaza vs the clear plaza and a grass planter laid there)

- confirms a change region of litter, and rejects those of a planter (counted in the camera's metrics:
  each is an event the same rule would have sent without the head) (`params.confirm.model`);
- runs by itself on a zone's crop every 2 s (`source: state`): one event after the dwell while litter
  lies in the zone, cleared once it is picked up, none for the planter.

Training crops come from other moments of the clip (other walkers) than the ones the runs look at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cityeye.cli import main
from edge_agent.config import ConfigError, load_camera_config, parse_camera_config
from edge_agent.pipeline import Pipeline
from edge_agent.sinks import MemorySink
from edge_agent.types import Frame, ProblemUpdate
from tests.edge_agent.change.clips import LITTER_AT, LITTER_SOURCE, PLAZA, Scene, paste, vtest_frames

pytestmark = pytest.mark.slow

T0 = 1_772_416_800.0  # 2026-03-02 10:00 Shanghai
FPS = 1.0  # frames sampled and detected per second (change analyses run once a second anyway)
W, H = LITTER_SOURCE[2] - LITTER_SOURCE[0], LITTER_SOURCE[3] - LITTER_SOURCE[1]
PLANTER_SOURCE = (200, 480, 200 + W, 480 + H)  # a strip of the clip's lawn, laid on the plaza as a planter
MARGIN = 0.15  # what a change region's crop adds around its box (edge_agent.change.view.ChangeView.crops)
SPOT = (round(LITTER_AT[0] - MARGIN * W), round(LITTER_AT[1] - MARGIN * H),
        round(LITTER_AT[0] + (1 + MARGIN) * W), round(LITTER_AT[1] + (1 + MARGIN) * H))  # where things are set down
SPOT_ZONE = [[SPOT[0] / 768, SPOT[1] / 576], [SPOT[2] / 768, SPOT[1] / 576], [SPOT[2] / 768, SPOT[3] / 576],
             [SPOT[0] / 768, SPOT[3] / 576]]


def planter(start: float, end: float):
    def edit(image: np.ndarray, t: float) -> None:
        if start <= t < end:
            x1, y1, x2, y2 = PLANTER_SOURCE
            paste(image, vtest_frames(FPS)[0][y1:y2, x1:x2], LITTER_AT)
    return edit


def training_boxes() -> list[tuple[int, int, int, int]]:
    """The spot itself (what a state rule sees), and crops of a confirmer's size (edge_agent.change.rule.
    context_box plus its margin) centred on the object and on its two ends (regions are often a part)."""
    side_w, side_h = round(0.15 * 768 * (1 + 2 * MARGIN)), round(0.15 * 576 * (1 + 2 * MARGIN))
    cy = LITTER_AT[1] + H // 2
    boxes = [SPOT]
    for cx in (LITTER_AT[0] + 10, LITTER_AT[0] + W // 2, LITTER_AT[0] + W - 10):
        boxes.append((cx - side_w // 2, cy - side_h // 2, cx + side_w // 2, cy + side_h // 2))
    return boxes


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> Path:
    """A state head "garbage" taught with `cityeye models fewshot --kind state` from folders of crops."""
    import cv2

    root = tmp_path_factory.mktemp("head")
    (root / "yes").mkdir()
    (root / "no").mkdir()
    times = [*range(0, 12, 3), *range(50, 80, 8)]  # the runs below look at 12-46 s
    scenes = {"yes": Scene(litter=(0, 1e9)), "no": Scene(), "planter": Scene(edits=[planter(0, 1e9)])}
    for name, scene in scenes.items():
        frames = scene.frames(FPS, times[-1] + 1)  # the runs' rate: vtest_frames caches two (FPS and 10)
        for t in times:
            for i, (x1, y1, x2, y2) in enumerate(training_boxes()):
                folder = root / ("yes" if name == "yes" else "no")
                cv2.imwrite(str(folder / f"{name}-{t:02d}-{i}.png"), frames[t][1][y1:y2, x1:x2])
    out = root / "garbage.json"
    assert main(["models", "fewshot", "--kind", "state", "--label", "garbage", "--positives", str(root / "yes"),
                 "--negatives", str(root / "no"), "--name", "plaza-garbage", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def detector():
    from edge_agent.detect import Detector

    return Detector.load("coco-nanodet")


def camera(rules: list[dict[str, Any]]) -> Any:
    return parse_camera_config({
        "id": "plaza-cam", "source": "vtest.avi", "timezone": "Asia/Shanghai", "detect_fps": FPS,
        "evidence": {"pre_s": 1, "post_s": 1, "clip": False}, "change": {"learn_s": 6, "learn_samples": 6},
        "zones": [{"id": "plaza", "kind": "plaza", "polygon": PLAZA},
                  {"id": "spot", "kind": "bin_area", "polygon": SPOT_ZONE}],
        "rules": rules,
    })


def run(cfg: Any, scene: Scene, detector, seconds: float) -> tuple[list[ProblemUpdate], Pipeline]:
    pipeline = Pipeline([cfg], detector, MemorySink(), device_id="box-1", ground=None)
    for i, (t, image) in enumerate(scene.frames(FPS, seconds)):
        pipeline.process([Frame(cfg.id, i, T0 + t, image)])
    pipeline.flush()
    return pipeline.cameras[cfg.id].updates, pipeline


def change_rule(confirm: dict[str, Any] | None) -> dict[str, Any]:
    params: dict[str, Any] = {"min_dwell_s": 10, "clear_after_s": 4, "min_area_frac": 0.004}
    if confirm:
        params["confirm"] = confirm
    return {"class_id": "exposed_garbage", "zones": ["plaza"], "source": "change", "params": params}


def opened(updates: list[ProblemUpdate]) -> list[ProblemUpdate]:
    return [u for u in updates if u.state == "opened"]


def test_the_head_confirms_litter_and_rejects_a_planter_that_would_have_fired(head, detector) -> None:
    confirmed = camera([change_rule({"model": str(head)})])
    litter, pipeline = run(confirmed, Scene(litter=(12, 1e9)), detector, 40)
    assert [(u.class_id, u.zone) for u in opened(litter)] == [("exposed_garbage", "plaza")]
    assert 22 <= opened(litter)[0].observed_at - T0 <= 36
    assert pipeline.cameras["plaza-cam"].metrics.change_rejected == 0

    planted, pipeline = run(confirmed, Scene(edits=[planter(12, 1e9)]), detector, 40)
    assert opened(planted) == []
    # Only regions that passed the dwell, the area and the "appeared" checks are asked: each rejection is
    # an event the rule would have sent without the head.
    assert pipeline.cameras["plaza-cam"].metrics.change_rejected >= 1


def test_a_state_rule_opens_after_the_dwell_and_clears_when_the_state_flips_back(head, detector) -> None:
    rule = {"class_id": "overflowing_garbage_bin", "zones": ["spot"], "source": "state",
            "params": {"model": str(head), "every_s": 2, "min_dwell_s": 6, "clear_after_s": 4}}
    updates, pipeline = run(camera([rule]), Scene(litter=(14, 34)), detector, 46)
    assert [u.state for u in updates] == ["opened", "cleared"], [(u.state, u.observed_at - T0) for u in updates]
    first, last = updates
    assert first.class_id == "overflowing_garbage_bin" and first.zone == "spot" and first.labels == ("garbage",)
    assert 14 + 6 <= first.observed_at - T0 <= 14 + 6 + 5
    assert 34 + 4 - 2 <= last.observed_at - T0 <= 34 + 4 + 5
    state = pipeline.cameras["plaza-cam"].states
    assert state is not None and state.checks == 23  # every 2 s over 46 s: 0.5 Hz, not per frame

    planted, _ = run(camera([rule]), Scene(edits=[planter(14, 34)]), detector, 30)  # 16 s: past the dwell
    assert planted == []


def test_check_config_names_the_head_field(head, tmp_path, capsys) -> None:
    import yaml

    def write(rules: list[dict[str, Any]]) -> Path:
        path = tmp_path / "cam.yaml"
        path.write_text(yaml.safe_dump({"id": "plaza-cam", "source": "vtest.avi", "timezone": "UTC",
                                        "zones": [{"id": "plaza", "kind": "plaza", "polygon": PLAZA}],
                                        "rules": rules}))
        return path

    missing = write([change_rule({"model": str(tmp_path / "none.json")})])
    with pytest.raises(ConfigError, match=r"rules\[0\]\.params\.confirm\.model: cannot read few-shot model"):
        load_camera_config(missing)
    assert main(["edge", "check-config", str(missing)]) == 1
    assert "rules[0].params.confirm.model" in capsys.readouterr().err
    wrong_label = write([change_rule({"model": str(head), "label": "bags"})])
    with pytest.raises(ConfigError, match=r"params\.confirm\.model: .* has no label 'bags' \(it has \['garbage'\]\)"):
        load_camera_config(wrong_label)
    both = write([change_rule({"model": str(head), "by": "x"})])
    with pytest.raises(ConfigError, match=r"rules\[0\]\.params: .*exactly one of model .* or by"):
        load_camera_config(both)
    state = write([{"class_id": "exposed_garbage", "zones": ["plaza"], "source": "state",
                    "params": {"model": "bins.onnx"}}])
    with pytest.raises(ConfigError, match=r"rules\[0\]\.params\.model: 'bins\.onnx' is not a few-shot head file"):
        load_camera_config(state)
    slow = write([{"class_id": "exposed_garbage", "zones": ["plaza"], "source": "state",
                   "params": {"model": str(head), "every_s": 0.1}}])
    with pytest.raises(ConfigError, match=r"params\.every_s"):
        load_camera_config(slow)
    assert load_camera_config(write([change_rule({"model": str(head)})])).rules[0].change_params().confirm
