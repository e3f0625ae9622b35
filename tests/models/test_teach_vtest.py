"""Done-when on real footage: teach the traffic cones along the tape in vtest.avi (COCO has no cone).

Label 20 frames of the first 40 s (tests/models/vtest_cones.py), write the dataset (one camera-day:
split by time, the last 40 s held out), fit a few-shot cells head on the detector's own features,
compare it with coco-nanodet on the held-out frames, then run it as the edge's model on a replay
where a roadway zone along the tape has a work-zone rule: a cone event carries the head's version.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from vtest_cones import extract_frames, write_labels

from cityeye.cli import main
from edge_agent.config import parse_camera_config
from edge_agent.fewshot import FewShotDetector, ZoneStateClassifier, feature_backend, load_detector
from edge_agent.pipeline import replay
from edge_agent.sinks import FolderSink, read_folder_events
from models.cache import sha256_file
from models.dataset import load_dataset, read_labels, write_yolo
from models.fewshot import load_model
from models.fewshot_train import train_state
from tests.conftest import shared_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    video = shared_file("video/vtest.avi")
    root = tmp_path_factory.mktemp("teach")
    frames = extract_frames(video, root / "frames")
    write_yolo(read_labels(write_labels(frames, root / "labels.jsonl")), root / "ds", val_fraction=0.5)
    head = root / "vtest-cones.json"
    assert main(["models", "fewshot", "--data", str(root / "ds"), "--label", "traffic_cone",
                 "--name", "vtest-cones", "--out", str(head)]) == 0
    return video, root, head


def test_held_out_frames_are_not_trained_on(taught):
    _, root, _ = taught
    dataset = load_dataset(root / "ds")
    assert len(dataset.frames["train"]) == len(dataset.frames["val"]) == 20
    assert max(f.taken_at for f in dataset.frames["train"]) < min(f.taken_at for f in dataset.frames["val"])


def test_cones_are_learned_and_cross_validated(taught):
    _, _, head = taught
    model = load_model(head)
    (cone,) = model.heads
    assert cone.label == "traffic_cone" and model.backbone.name == "coco-nanodet"
    assert cone.validation["positives"] >= 100 and cone.validation["average_precision"] > 0.9


def test_compare_before_and_after_on_the_held_out_split(taught, capsys):
    _, root, head = taught
    code = main(["models", "eval", "--data", str(root / "ds"), "--compare", "coco-nanodet", str(head)])
    out = capsys.readouterr().out
    print(out)
    assert code == 0, out  # coco-nanodet has no cone class, so nothing active can get worse
    rows = {line.split()[0] if not line.startswith(" ") else "new": line.split() for line in out.splitlines()}
    before, after = rows["traffic_cone"], rows["new"]
    assert before[1] == "coco-nanodet" and float(before[5]) == 0.0  # AP50 without a cone label
    assert after[0] == "vtest-cones" and float(after[4]) > 0.5  # AP50 on frames never trained on


def test_a_cone_event_reaches_the_sink_tagged_with_the_head(taught, tmp_path):
    video, _, head = taught
    short = tmp_path / "vtest-20s.avi"  # the first 20 s keep the test quick
    capture = cv2.VideoCapture(str(video))
    writer = cv2.VideoWriter(str(short), cv2.VideoWriter_fourcc(*"MJPG"), 10, (768, 576))
    for _ in range(200):
        ok, frame = capture.read()
        writer.write(frame)
    writer.release()
    capture.release()
    cfg = parse_camera_config({
        "id": "vtest", "source": str(short), "timezone": "Asia/Shanghai", "detect_fps": 1,
        "start_time": "2026-03-02T10:00:00", "motion": {"enabled": False}, "model": str(head),
        "zones": [{"id": "taped_lane", "kind": "roadway",
                   "polygon": [[0, 0.28], [0.62, 0.28], [0.62, 0.38], [0, 0.38]]}],
        "rules": [{"class_id": "work_zone_on_road", "zones": ["taped_lane"], "params": {"min_dwell_s": 5}}],
        "evidence": {"pre_s": 1, "post_s": 1},
    })
    detector, _ = load_detector(cfg.model)
    assert isinstance(detector, FewShotDetector) and "traffic_cone" in detector.labels
    result = replay(cfg, str(short), detector, FolderSink(tmp_path / "out"), device_id="box-1")
    events = read_folder_events(tmp_path / "out")
    cones = [e for e in events if e.class_id == "work_zone_on_road"]
    assert cones, f"no work-zone event in {result.detect_frames} detected frames"
    assert all(e.model is not None and e.model.name == "vtest-cones" and e.model.sha256 == sha256_file(head)
               for e in cones)
    assert "traffic_cone" in cones[0].labels


def test_state_head_tells_a_coned_spot_from_an_empty_one(taught):
    video, root, _ = taught
    backend = feature_backend()
    frames = [cv2.imread(str(p)) for p in sorted((root / "frames").glob("*.jpg"))]
    cone_spot, empty_spot = (150, 170, 190, 215), (210, 175, 250, 220)  # around cone 2; tape without a cone

    def crop(image, box):
        x1, y1, x2, y2 = box
        return image[y1:y2, x1:x2]

    trained = frames[0:20:2]
    crops = [(crop(f, cone_spot), True) for f in trained] + [(crop(f, empty_spot), False) for f in trained]
    model = train_state(crops, "cone_placed", backend, "spot-state")
    path = root / "spot.json"
    model.save(path)
    classifier = ZoneStateClassifier.load(path)
    held_out = frames[21::3]
    assert all(classifier(f, cone_spot)["cone_placed"] > 0.5 for f in held_out)
    assert all(classifier(f, empty_spot)["cone_placed"] < 0.5 for f in held_out)
    with pytest.raises(ValueError, match="smaller than 8x8"):
        classifier(frames[0], (0, 0, 4, 4))
    assert np.isfinite(model.heads[0].validation["average_precision"])
