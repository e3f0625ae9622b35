"""Change detection's parts on synthetic images: fast, no fixtures.

The scene is a random 8x8-tile texture (`edge_fakes.textured_frame`); an "object" is a block of other
tiles set on it.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.change.params import ChangeConfig
from edge_agent.change.persistence import StaticChange
from edge_agent.change.shadow import is_cast_shadow
from edge_agent.change.structure import appeared, difference, structure
from edge_agent.change.watch import ChangeWatch
from edge_agent.config import ConfigError, parse_camera_config
from edge_agent.evidence import before_after
from edge_agent.rules.config import RuleConfig
from edge_agent.types import Frame, ProblemUpdate, Track, TrackState
from edge_agent.zones import ZoneConfig
from protocol.catalog import default_catalog
from tests.edge_agent.edge_fakes import textured_frame

W, H = 320, 240
OBJECT = (120, 100, 168, 140)  # x1, y1, x2, y2 in the frame
ZONE = ZoneConfig(id="walk", kind="sidewalk", polygon=[(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)])


def scene(with_object: bool = False, gain: float | tuple[float, float, float] = 1.0) -> np.ndarray:
    image = textured_frame(W, H, seed=1).astype(np.float32) * 0.6 + 40
    if with_object:
        x1, y1, x2, y2 = OBJECT
        image[y1:y2, x1:x2] = textured_frame(x2 - x1, y2 - y1, seed=7)[..., ::-1] * 0.5 + 20
    return np.clip(image * np.asarray(gain, np.float32), 0, 255).astype(np.uint8)


def rule(**params: Any) -> RuleConfig:
    defaults = {"min_dwell_s": 10, "clear_after_s": 3, "min_area_frac": 0.01}
    return RuleConfig.model_validate({"class_id": "exposed_garbage", "zones": ["walk"], "source": "change",
                                      "params": {**defaults, **params}, "cooldown_s": 0})


def watch(*rules: RuleConfig, **config: Any) -> ChangeWatch:
    cfg = ChangeConfig(**{"learn_s": 3, "learn_samples": 3, "fault_after_s": 3, **config})
    return ChangeWatch(cfg, list(rules) or [rule()], [ZONE], "cam", default_catalog(), **{})


def feed(w: ChangeWatch, images: list[np.ndarray], t0: float = 0.0,
         tracks: list[Track] | None = None) -> list[tuple[float, ProblemUpdate]]:
    out = []
    for i, image in enumerate(images):
        ts = 1_700_000_000.0 + t0 + i
        out.extend((t0 + i, u) for u in w.update(Frame("cam", i, ts, image), tracks or []))
    return out


# --- the comparison -----------------------------------------------------------------------------


@pytest.mark.parametrize("gain", [0.55, 1.4, (0.7, 1.0, 1.3)], ids=["darker", "brighter", "colour-cast"])
def test_structure_ignores_gain_and_colour_casts_but_not_an_object(gain) -> None:
    ref = structure(scene())
    lit = difference(structure(scene(gain=gain)), ref)
    obj = difference(structure(scene(with_object=True)), ref)
    x1, y1, x2, y2 = OBJECT
    assert float((lit > 0.1).mean()) < 0.02
    assert float((obj[y1:y2, x1:x2] > 0.1).mean()) > 0.5


def test_appeared_tells_an_object_set_down_from_one_taken_away() -> None:
    plain = np.full((H, W, 3), 120, np.uint8)
    busy = plain.copy()
    x1, y1, x2, y2 = OBJECT
    busy[y1:y2, x1:x2] = textured_frame(x2 - x1, y2 - y1, seed=3)
    mask = np.zeros((H, W), bool)
    mask[y1:y2, x1:x2] = True
    assert appeared(structure(busy), structure(plain), mask)
    assert not appeared(structure(plain), structure(busy), mask)


def test_persistence_ages_what_stays_restarts_what_changes_and_pauses_under_masks() -> None:
    ref = structure(scene())
    still = structure(scene(with_object=True))
    other = structure(scene(with_object=True)[:, ::-1].copy())
    p = StaticChange((H, W))
    nothing = np.zeros((H, W), bool)
    y, x = 120, 144  # inside OBJECT
    for t in range(5):
        p.update(still, difference(still, ref), nothing, float(t), 1.0, 0.1)
    assert p.age(4.0)[y, x] == 4.0
    covered = np.ones((H, W), bool)
    p.update(other, difference(other, ref), covered, 5.0, 1.0, 0.1)  # hidden: state kept, clock paused
    assert p.age(5.0)[y, x] == 4.0
    p.update(other, difference(other, ref), nothing, 6.0, 1.0, 0.1)  # a different look: starts over
    assert p.age(6.0)[y, x] == 0.0
    p.update(ref, difference(ref, ref), nothing, 7.0, 1.0, 0.1)  # matches the reference: not changed
    assert np.isnan(p.age(7.0)[y, x])


# --- the watch ----------------------------------------------------------------------------------


def test_an_object_opens_after_the_dwell_at_its_place_and_clears_when_gone() -> None:
    w = watch()
    images = [scene()] * 5 + [scene(with_object=True)] * 20 + [scene()] * 6
    updates = feed(w, images)
    states = [(t, u.state) for t, u in updates]
    assert [s for _, s in states] == ["opened", "cleared"]
    assert states[0][0] == 5 + 10  # set down at 5 s, 10 s dwell
    assert states[1][0] == 25 + 3 - 1  # last seen at 24 s, cleared 3 s later
    x1, y1, x2, y2 = updates[0][1].xyxy
    assert abs(x1 - OBJECT[0]) <= 8 and abs(y1 - OBJECT[1]) <= 8 and abs(x2 - OBJECT[2]) <= 8
    assert updates[0][1].reference_image is not None


def test_a_person_track_masks_what_stands_there() -> None:
    person = Track(1, 0, "person", (110.0, 90.0, 178.0, 150.0), 0.9, TrackState.TRACKED, 0.0, 0.0)
    w = watch()
    updates = feed(w, [scene()] * 5 + [scene(with_object=True)] * 20, tracks=[person])
    assert updates == []
    bag = Track(2, 0, "handbag", person.xyxy, 0.9, TrackState.TRACKED, 0.0, 0.0)  # not a mover: not masked
    assert [u.state for _, u in feed(watch(), [scene()] * 5 + [scene(with_object=True)] * 20, tracks=[bag])] \
        == ["opened"]


def test_light_changes_open_nothing() -> None:
    gains = [1.0] * 5 + [0.6] * 15 + [(0.7, 1.0, 1.3)] * 15 + [1.3] * 15
    assert feed(watch(), [scene(gain=g) for g in gains]) == []


def test_something_that_was_there_at_learning_and_left_is_no_event() -> None:
    w = watch()
    assert feed(w, [scene(with_object=True)] * 4 + [scene()] * 20) == []


def test_a_knocked_view_is_one_fault_and_the_rules_pause() -> None:
    shifted = np.roll(scene(with_object=True), (17, 23), axis=(0, 1))
    updates = feed(watch(), [scene()] * 4 + [shifted] * 20 + [scene()] * 6)
    assert [(t, u.class_id, u.state) for t, u in updates] == [
        (4 + 3, "camera_view_shifted", "opened"), (24 + 3, "camera_view_shifted", "cleared")]


def test_retake_adopts_the_current_view_of_the_zone() -> None:
    w = watch()
    feed(w, [scene()] * 4 + [scene(with_object=True)] * 6)
    w.retake("walk")  # e.g. the hub verified this zone's case clear: the object belongs there
    assert feed(w, [scene(with_object=True)] * 20, t0=10) == []


def test_a_late_retake_keeps_what_appeared_after_the_verification_and_only_takes_its_box() -> None:
    from protocol.messages import NormBox

    t0 = 1_700_000_000.0
    late = watch()
    feed(late, [scene()] * 4 + [scene(with_object=True)] * 3)
    late.retake("walk", as_of=t0 + 2)  # verified clear at 2 s; the object came at 4 s: it stays a change
    assert [u.state for _, u in feed(late, [scene(with_object=True)] * 12, t0=7)] == ["opened"]
    elsewhere = watch()
    feed(elsewhere, [scene()] * 4 + [scene(with_object=True)] * 3)
    elsewhere.retake("walk", box=NormBox(x1=0.7, y1=0.7, x2=0.85, y2=0.85), as_of=t0 + 6)  # another place
    assert [u.state for _, u in feed(elsewhere, [scene(with_object=True)] * 12, t0=7)] == ["opened"]
    there = watch()
    feed(there, [scene()] * 4 + [scene(with_object=True)] * 3)
    there.retake("walk", box=NormBox(x1=0.37, y1=0.41, x2=0.53, y2=0.59), as_of=t0 + 6)  # the object's place
    assert feed(there, [scene(with_object=True)] * 12, t0=7) == []
    assert there.pop_counts() == (1, 0) and there.pop_counts() == (0, 0)
    with pytest.raises(LookupError, match="zone 'road' has no change rule"):
        there.retake("road")


def test_a_confirmer_decides_and_sees_the_place_before_and_now() -> None:
    seen: list[tuple[str, np.ndarray, np.ndarray]] = []

    def says(score: float):
        def confirm(class_id: str, current: np.ndarray, reference: np.ndarray) -> float:
            seen.append((class_id, current, reference))
            return score
        return confirm

    images = [scene()] * 4 + [scene(with_object=True)] * 20
    confirmed = rule(confirm={"by": "bags", "min_score": 0.5})
    assert feed(ChangeWatch(ChangeConfig(learn_s=3, learn_samples=3), [confirmed], [ZONE], "cam", default_catalog(),
                            confirmers={"bags": says(0.2)}), images) == []
    assert len(seen) == 1  # a rejected region is not asked again while it stays
    class_id, current, reference = seen[0]
    assert class_id == "exposed_garbage" and current.shape == reference.shape
    assert float(np.abs(current.astype(int) - reference.astype(int)).mean()) > 20
    yes = ChangeWatch(ChangeConfig(learn_s=3, learn_samples=3), [confirmed], [ZONE], "cam", default_catalog(),
                      confirmers={"bags": says(0.9)})
    assert [u.score for _, u in feed(yes, images)] == [0.9]
    with pytest.raises(ValueError, match="params.confirm.by names confirmer 'bags'"):
        ChangeWatch(ChangeConfig(), [confirmed], [ZONE], "cam", default_catalog())


def test_before_after_puts_the_reference_left_of_the_place_now() -> None:
    before, after = np.zeros((10, 8, 3), np.uint8), np.full((20, 16, 3), 200, np.uint8)
    out = before_after(before, after)
    assert out.shape == (20, 16 + 6 + 16, 3)
    assert out[:, :16].max() == 0 and out[:, 16:22].min() == 255 and out[:, 22:].min() == 200


# --- config -------------------------------------------------------------------------------------


def camera(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "c", "source": "x.mp4", "timezone": "UTC",
            "zones": [{"id": "walk", "kind": "sidewalk", "polygon": [[0, 0], [1, 0], [1, 1]]},
                      {"id": "gate", "kind": "line", "line": [[0, 0.5], [1, 0.5]]}],
            "rules": rules}


def test_change_params_inherit_the_class_dwell_and_name_bad_fields() -> None:
    cfg = parse_camera_config(camera([{"class_id": "exposed_garbage", "zones": ["walk"], "source": "change",
                                       "params": {"min_area_frac": {"walk": 0.02}}}]))
    params = cfg.rules[0].change_params()
    assert params.min_dwell_s == 600  # exposed_garbage's catalog default
    assert params.min_area_for("walk") == 0.02
    with pytest.raises(ConfigError, match=r"rules\[0\]\.params: .*params\.min_dwell_s"):
        parse_camera_config(camera([{"class_id": "exposed_garbage", "zones": ["walk"], "source": "change",
                                     "params": {"min_dwell_s": -1}}]))
    with pytest.raises(ConfigError, match="params.stationary_iou: Extra inputs"):
        parse_camera_config(camera([{"class_id": "exposed_garbage", "zones": ["walk"], "source": "change",
                                     "params": {"stationary_iou": 0.5}}]))
    with pytest.raises(ConfigError, match="not about a place that changes"):
        parse_camera_config(camera([{"class_id": "wrong_way_vehicle", "zones": ["gate"], "source": "change"}]))


def test_a_change_rule_needs_no_label_and_is_not_reported_inactive() -> None:
    from edge_agent.rules.engine import RuleEngine

    cfg = parse_camera_config(camera([{"class_id": "exposed_garbage", "zones": ["walk"], "source": "change"}]))
    engine = RuleEngine(default_catalog(), cfg.zones, cfg.rules, cfg.id, (640, 480))
    assert engine.rules == [] and engine.inactive_rules(["person"]) == []


def test_a_pushed_config_rebuilds_the_change_rules_only_when_they_change() -> None:
    from edge_agent.pipeline import Pipeline
    from edge_agent.sinks import MemorySink
    from tests.edge_agent.edge_fakes import ScriptedDetector

    plain = parse_camera_config(camera([{"class_id": "begging", "zones": ["walk"]}]))
    pipeline = Pipeline([plain], ScriptedDetector(), MemorySink(), device_id="box", ground=None)
    assert pipeline.cameras["c"].change is None
    with_change = parse_camera_config(camera([{"class_id": "begging", "zones": ["walk"]},
                                              {"class_id": "exposed_garbage", "zones": ["walk"], "source": "change"}]))
    pipeline.reconfigure(with_change)
    watch_ = pipeline.cameras["c"].change
    assert watch_ is not None and [r.class_id for r in watch_.rule_configs] == ["exposed_garbage"]
    pipeline.reconfigure(with_change.model_copy(update={"detect_fps": 1.0}))
    assert pipeline.cameras["c"].change is watch_  # the learned reference is kept
    pipeline.reconfigure(plain)
    assert pipeline.cameras["c"].change is None


def _shadow_case(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(current, reference, region) at the analysis size: the textured scene with a hard shadow's edge
    (left of x=100 darkened by a bluish gain) or an object over the same place; the region is the band
    around the new edge / the object, as the rule would find it."""

    reference = cv2.resize(scene(), (256, 192), interpolation=cv2.INTER_AREA)
    current = reference.astype(np.float32)
    region = np.zeros((192, 256), bool)
    if kind == "shadow":
        current[40:150, 60:100] *= np.array([0.55, 0.5, 0.45], np.float32)
        region[40:150, 96:104] = True
    else:
        grey = textured_frame(40, 40, seed=9).astype(np.float32).mean(axis=2, keepdims=True)
        current[60:100, 80:120] = grey * 0.5 + float(reference[60:100, 80:120].mean()) - 0.5 * float(grey.mean())
        region[58:102, 78:122] = True
    return np.clip(current, 0, 255).astype(np.uint8), reference, region


@pytest.mark.parametrize(("kind", "shadow"), [("shadow", True), ("grey object", False)])
def test_a_hard_shadow_edge_is_a_gain_and_a_grey_object_is_not(kind: str, shadow: bool) -> None:
    current, reference, region = _shadow_case(kind)
    assert is_cast_shadow(current, reference.astype(np.float32), region, np.zeros_like(region)) is shadow
    masked = np.ones_like(region)  # all of it under movers: no verdict, kept as an object
    assert is_cast_shadow(current, reference.astype(np.float32), region, masked) is False
