"""Done-when replays of vtest.avi with the real detector and rule engine.

vtest.avi: 79.5 s at 10 fps; a white van and a car stand parked at the top right the whole clip,
pedestrians cross the plaza. Each replay runs once per module (detect_fps 2) and several tests read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.config import CameraConfig, parse_camera_config
from edge_agent.evidence import sha256_hex
from edge_agent.pipeline import ReplayResult, replay
from edge_agent.sinks import FolderSink, read_folder_events
from protocol.messages import ProblemState
from tests.conftest import shared_file

pytestmark = pytest.mark.slow

START = "2026-03-02T10:00:00"  # a Monday morning in Shanghai
NO_PARKING = {"id": "np_top_right", "kind": "no_parking",
              "polygon": [[0.80, 0.03], [1.0, 0.03], [1.0, 0.22], [0.80, 0.22]]}
# The paved plaza below the tape and cones (a cone detected as a "person" would loiter all clip long).
PLAZA = {"id": "plaza", "kind": "plaza",
         "polygon": [[0.0, 0.38], [0.6, 0.38], [0.75, 0.32], [1.0, 0.5], [1.0, 0.85], [0.45, 0.62], [0.0, 0.45]]}
EVENINGS = {"windows": [{"days": "daily", "start": "18:00", "end": "23:00"}]}


def camera(rules: list[dict[str, Any]], gating: bool, detect_source: Path | None = None) -> CameraConfig:
    zones = [NO_PARKING, PLAZA, {**PLAZA, "id": "plaza_evenings"}]
    return parse_camera_config({
        "id": "vtest", "source": "vtest.avi", "timezone": "Asia/Shanghai", "detect_fps": 2,
        "start_time": START, "motion": {"enabled": gating}, "zones": zones, "rules": rules,
        "evidence": {"pre_s": 3, "post_s": 3},
        **({"detect_source": str(detect_source)} if detect_source else {}),
    })


PARKING_30 = {"class_id": "illegal_car_parking", "zones": ["np_top_right"], "params": {"min_dwell_s": 30}}
LOITER_30 = {"id": "loiter30", "class_id": "begging", "zones": ["plaza"], "params": {"min_dwell_s": 30}}


def _load(model: str, cache_dir: Path | None = None):
    """The detector as the agent loads it: down to its trackers' second-stage floor."""
    from edge_agent.detect import Detector
    from edge_agent.pipeline import detection_floor

    return Detector.load(model, cache_dir=cache_dir, floor=detection_floor([camera([], True)]))


@pytest.fixture(scope="module")
def detector():
    try:
        return _load("coco-nanodet")
    except (FileNotFoundError, LookupError, ValueError) as exc:
        pytest.fail(f"the default model is not cached; run `cityeye models pull coco-nanodet`: {exc}")


@pytest.fixture(scope="module")
def int8_detector(tmp_path_factory, detector):
    """coco-nanodet quantised to int8 as `cityeye models quantize coco-nanodet --frames vtest.avi --detect-size
    384x288` does it (128 frames, half calibrate, half check), as a busy box runs it: its events must be the
    float model's."""
    from models.cache import resolve
    from models.frame_sources import read_frames
    from models.quantize import quantize

    frames = read_frames([str(shared_file("video/vtest.avi"))], 128, size=(384, 288))
    root = tmp_path_factory.mktemp("int8")
    done = quantize(resolve("coco-nanodet"), frames, root=root)
    return _load(done.model.manifest.name, root)


def _run(tmp_path_factory, detector, cfg: CameraConfig, name: str) -> tuple[ReplayResult, Path]:
    video = shared_file("video/vtest.avi")
    out = tmp_path_factory.mktemp(name)
    return replay(cfg, str(video), detector, FolderSink(out), device_id="box-1"), out


@pytest.fixture(scope="module")
def substream(tmp_path_factory) -> Path:
    """vtest.avi as a camera's 384x288 H.264 sub-stream."""
    from edge_agent.substream import make_substream

    return make_substream(shared_file("video/vtest.avi"), tmp_path_factory.mktemp("sub") / "sub.mp4")


@pytest.fixture(scope="module")
def parking_runs(request, tmp_path_factory, detector):
    """Each replay once per module, on first use: detection on vtest.avi itself (gating off and on),
    and on its 384x288 sub-stream with the evidence from vtest.avi as the main stream (float and int8)."""
    runs: dict[str, tuple[ReplayResult, Path]] = {}

    def get(kind: str) -> tuple[ReplayResult, Path]:
        if kind not in runs:
            sub = request.getfixturevalue("substream") if kind.startswith("sub-stream") else None
            cfg = camera([PARKING_30, LOITER_30], kind != "gating-off", detect_source=sub)
            model = request.getfixturevalue("int8_detector") if kind.endswith("int8") else detector
            runs[kind] = _run(tmp_path_factory, model, cfg, "parking")
        return runs[kind]

    return get


@pytest.fixture(params=["gating-off", "gating-on", "sub-stream", "sub-stream-int8"])
def parking_run(request, parking_runs):
    return parking_runs(request.param)


@pytest.fixture(scope="module")
def short_loiter_run(tmp_path_factory, detector):
    rules = [
        {"id": "loiter3", "class_id": "begging", "zones": ["plaza"], "params": {"min_dwell_s": 3}},
        {"id": "loiter3_evenings", "class_id": "begging", "zones": ["plaza_evenings"],
         "params": {"min_dwell_s": 3},
         "schedule": EVENINGS},
        {**PARKING_30, "schedule": EVENINGS},
    ]
    return _run(tmp_path_factory, detector, camera(rules, True), "loiter")


def offset(cfg: CameraConfig, ts: float) -> float:
    return ts - (cfg.start_epoch() or 0.0)


def test_one_parking_event_each_for_van_and_car_after_30_s(parking_run) -> None:
    result, _ = parking_run
    parking = [u for u in result.updates if u.class_id == "illegal_car_parking"]
    assert [u.state for u in parking] == ["opened", "opened"], "exactly two openings and no cleared"
    width = 384 if result.camera.detect_source else 768  # boxes are in the detect stream's pixels
    centres = sorted((u.xyxy[0] + u.xyxy[2]) / 2 * 768 / width for u in parking)
    assert 640 < centres[0] < 720 and centres[1] > 730  # the van, then the car at the right edge
    assert len({u.track_ids for u in parking}) == 2
    for u in parking:
        assert offset(result.camera, u.observed_at) >= 30.0
        assert u.dwell_s >= 30.0 and offset(result.camera, u.first_seen) < 1.0  # present from the start
        assert set(u.labels) <= {"car", "truck", "bus"}


def test_no_loitering_event_at_30_s(parking_run) -> None:
    result, _ = parking_run
    assert [u for u in result.updates if u.class_id == "begging"] == []


def test_events_are_written_with_media_that_decode_and_match_hashes(parking_run) -> None:
    result, out = parking_run
    events = read_folder_events(out)
    assert [(e.class_id, e.state) for e in events] == [("illegal_car_parking", ProblemState.OPENED)] * 2
    for event in events:
        assert event.device_id == "box-1" and event.camera_id == "vtest" and event.zone == "np_top_right"
        assert event.model is not None and event.model.name.startswith("coco-nanodet") and event.agent_version
        assert event.box.x1 > 0.8 and event.box.y2 < 0.25
        folder = out / event.event_id
        names = {m.name: m for m in event.media}
        # Parking evidence: the three timed stills; the van and car are far too small for their plates,
        # so the event says the plate was not read (text None) and no plate crop comes: never a guess.
        assert set(names) == {"snapshot.jpg", "annotated.jpg", "crop.jpg", "clip.mp4",  # H.264: every browser
                              "still_1.jpg", "still_2.jpg", "still_3.jpg"}
        assert event.v == 2 and event.plate is not None and event.plate.text is None
        for ref in event.media:
            data = (folder / ref.name).read_bytes()
            assert len(data) == ref.size and sha256_hex(data) == ref.sha256
        snap = cv2.imread(str(folder / "snapshot.jpg"))
        annotated = cv2.imread(str(folder / "annotated.jpg"))
        crop = cv2.imread(str(folder / "crop.jpg"))
        assert snap.shape == annotated.shape == (576, 768, 3)
        assert crop.shape[0] < 200 and crop.shape[1] < 200
        assert np.abs(snap.astype(int) - annotated.astype(int)).mean() > 0.5  # drawn on a copy
        assert names["clip.mp4"].content_type == "video/mp4"
        cap = cv2.VideoCapture(str(folder / "clip.mp4"))
        frames = 0
        while cap.read()[0]:
            frames += 1
        assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (768, 576)
        cap.release()
        assert 12 <= frames <= 14  # 3 s before + the firing frame + 3 s after, at 2 fps


def test_sub_stream_evidence_shows_the_main_streams_frame_at_that_moment(parking_runs) -> None:
    result, out = parking_runs("sub-stream")
    video = cv2.VideoCapture(str(shared_file("video/vtest.avi")))
    for event in read_folder_events(out):
        index = round(offset(result.camera, event.observed_at.timestamp()) * 10)  # 10 fps
        video.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, main_frame = video.read()
        assert ok
        snap = cv2.imread(str(out / event.event_id / "snapshot.jpg"))
        assert np.abs(snap.astype(int) - main_frame).mean() < 3  # that very frame, up to JPEG loss
        crop = cv2.imread(str(out / event.event_id / "crop.jpg"))
        box_w = (event.box.x2 - event.box.x1) * 768  # the sub-stream's box, scaled to the main stream
        assert box_w <= crop.shape[1] <= box_w * 1.4 + 2
    video.release()


def test_gating_keeps_results_and_counts_saved_calls(parking_run) -> None:
    result, _ = parking_run
    assert result.frames == 159
    assert result.detect_frames + result.gate_skipped == result.frames
    if result.camera.motion.enabled:
        # Pedestrians move in nearly every frame of this clip, so little is saved here; the count is real.
        assert result.gate_skipped >= 0
    else:
        assert result.gate_skipped == 0


def test_three_second_loitering_fires(short_loiter_run) -> None:
    result, _ = short_loiter_run
    opened = [u for u in result.updates if u.state == "opened"]
    assert any(u.class_id == "begging" and u.zone == "plaza" for u in opened)
    assert all(u.dwell_s >= 3.0 for u in opened)


def test_schedule_that_excludes_the_clip_time_gives_nothing(short_loiter_run) -> None:
    result, _ = short_loiter_run
    # Both the evening loitering rule and the evening parking rule are off at 10:00 in Shanghai.
    assert [u for u in result.updates if u.class_id == "illegal_car_parking"] == []
    zones = {u.zone for u in result.updates if u.class_id == "begging"}
    assert zones == {"plaza"}, "the evening rule watches plaza_evenings and must stay silent"
