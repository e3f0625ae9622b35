"""Done-when on real footage: teach the traffic cones along the tape in vtest.avi (COCO has no cone).

Label 40 frames (one per 2 s) through the hub's label API as the page does (tests/models/vtest_cones.py),
export them, write the dataset (one camera-day: split by time, the 20 frames of the last 40 s held out),
fit a few-shot cells head on the detector's own features, compare it with coco-nanodet on the held-out
frames, then run it as the edge's model on a replay where a roadway zone along the tape has a work-zone
rule: a cone event carries the head's version; and a release pushed mid-replay swaps in between ticks.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cityeye.cli import main
from edge_agent.config import parse_camera_config
from edge_agent.fewshot import FewShotDetector, ZoneStateClassifier, feature_backend, load_detector
from edge_agent.ingest import FileReplay
from edge_agent.model_install import apply_release
from edge_agent.pipeline import Pipeline, replay
from edge_agent.sinks import FolderSink, read_folder_events
from models.cache import sha256_file
from models.dataset import load_dataset, read_labels, write_yolo
from models.fewshot import load_model
from models.fewshot_train import train_state
from protocol.model_release import ReleaseError, inline_release
from tests.conftest import shared_file
from tests.models.vtest_cones import extract_frames, label_through_hub

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    video = shared_file("video/vtest.avi")
    root = tmp_path_factory.mktemp("teach")
    frames = extract_frames(video, root / "frames")
    write_yolo(read_labels(label_through_hub(frames, root)), root / "ds", val_fraction=0.5)
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


def short_clip(video: Path, out: Path, seconds: int) -> Path:
    capture = cv2.VideoCapture(str(video))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10, (768, 576))
    for _ in range(10 * seconds):
        ok, frame = capture.read()
        writer.write(frame)
    writer.release()
    capture.release()
    return out


def taped_lane_config(source: Path, model: str) -> dict:
    """A roadway zone along the tape with a work-zone rule (cones there for 5 s)."""
    return {
        "id": "vtest", "source": str(source), "timezone": "Asia/Shanghai", "detect_fps": 1,
        "start_time": "2026-03-02T10:00:00", "motion": {"enabled": False}, "model": model,
        "zones": [{"id": "taped_lane", "kind": "roadway",
                   "polygon": [[0, 0.28], [0.62, 0.28], [0.62, 0.38], [0, 0.38]]}],
        "rules": [{"class_id": "work_zone_on_road", "zones": ["taped_lane"], "params": {"min_dwell_s": 5}}],
        "evidence": {"pre_s": 1, "post_s": 1},
    }


def taped_lane(source: Path, model: str):
    return parse_camera_config(taped_lane_config(source, model))


def test_a_cone_event_reaches_the_sink_tagged_with_the_head(taught, tmp_path):
    video, _, head = taught
    short = short_clip(video, tmp_path / "vtest-20s.avi", 20)  # the first 20 s keep the test quick
    cfg = taped_lane(short, str(head))
    detector, _ = load_detector(cfg.model)
    assert isinstance(detector, FewShotDetector) and "traffic_cone" in detector.labels
    result = replay(cfg, str(short), detector, FolderSink(tmp_path / "out"), device_id="box-1")
    events = read_folder_events(tmp_path / "out")
    cones = [e for e in events if e.class_id == "work_zone_on_road"]
    assert cones, f"no work-zone event in {result.detect_frames} detected frames"
    assert all(e.model is not None and e.model.name == "vtest-cones" and e.model.sha256 == sha256_file(head)
               for e in cones)
    assert "traffic_cone" in cones[0].labels


def test_bench_measures_the_head_against_the_detector(taught):
    _, root, head = taught
    bench = Path(__file__).resolve().parents[2] / "bench" / "fewshot.py"
    proc = subprocess.run([sys.executable, str(bench), "--head", str(head), "--frames", "3", "--rounds", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("detector", "detector + head"):
        line = re.search(rf"^{re.escape(name)}\s+([0-9.]+) CPU ms/frame .*: +([0-9.]+)% of a core", proc.stdout, re.M)
        assert line and float(line.group(1)) > 0, proc.stdout
    assert re.search(r"ratio with head / without: [0-9.]+x", proc.stdout)


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


def test_a_pushed_release_swaps_in_between_ticks(taught, tmp_path):
    video, _, head = taught
    short = short_clip(video, tmp_path / "vtest-16s.avi", 16)
    cfg = taped_lane(short, "coco-nanodet")
    base, _ = load_detector("coco-nanodet")
    content = head.read_bytes()
    release = inline_release("vtest-cones", 2, "fewshot", content, backbone_sha256=base.manifest.sha256)
    bad = release.model_copy(update={"sha256": "0" * 64})
    root = tmp_path / "releases"
    pipeline = Pipeline([cfg], base, FolderSink(tmp_path / "out"), device_id="box-1")
    start = cfg.start_epoch()
    swapped_at: list[float] = []

    def on_frame(frame):
        if frame.ts - start >= 4 and not swapped_at:  # 4 s in, the push arrives
            with pytest.raises(ReleaseError, match="sha256"):
                apply_release(pipeline, bad, root)  # refused: the model in service stays
            assert pipeline.detector is base
            apply_release(pipeline, release, root)
            swapped_at.append(frame.ts)

    source = FileReplay(cfg.id, str(short), sample_fps=cfg.sample_fps(), start_time=start)
    pipeline.run_replays({cfg.id: source}, on_frame)
    assert swapped_at and (root / f"{release.sha256}.json").read_bytes() == content
    assert pipeline.cameras[cfg.id].metrics.frames_sampled == round(16 * cfg.sample_fps())  # none dropped
    cones = [e for e in read_folder_events(tmp_path / "out") if e.class_id == "work_zone_on_road"]
    assert cones and all(e.model.name == "vtest-cones" and e.model.sha256 == release.sha256 for e in cones)
    assert min(e.first_seen.timestamp() for e in cones) >= swapped_at[0] - 1  # cones only once the head ran


def test_rollout_reaches_a_running_agent_and_its_cone_events_reach_the_hub(taught, tmp_path):
    """The hub registers the head, deploys it to the camera; its ingest link pushes it (signed) to the
    running agent, which swaps it in; cone events reach the hub tagged with the head's name and sha256."""
    import threading
    import time

    import yaml
    from sqlalchemy import select

    from hub.devices.enrol import enroll_device
    from hub.devices.hubkeys import HubSigningKey
    from hub.ingest.config import IngestConfig
    from hub.ingest.loop import run_ingest
    from hub.releases import pushes, registry
    from hub.storage import schema
    from hub.storage.store import Store
    from models.fewshot import load_model
    from tests.agent_process import AgentProcess
    from tests.delivery_support import free_port

    video, _, head = taught
    clip = short_clip(video, tmp_path / "vtest-20s.avi", 20)
    data_dir = tmp_path / "hub"
    store = Store.open(None, data_dir)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    stop = threading.Event()
    run_ingest(IngestConfig(bind=endpoint, data_dir=data_dir, device_refresh_s=0.2), store, stop)
    cfg = {**taped_lane_config(clip, "coco-nanodet"), "loop": True}
    cfg.pop("start_time")  # live: frames carry the wall clock
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump(cfg))
    enroll_device(store, data_dir, "box-teach", endpoint).save(tmp_path / "box.bundle.json")
    agent = AgentProcess(tmp_path, tmp_path / "cam.yaml", tmp_path / "box.bundle.json", poll_s=0.5)

    def wait_for(what, check, timeout=120.0):
        return agent.wait_for(what, check, timeout)

    def camera_seen():
        with store.engine.connect() as conn:
            return conn.execute(select(schema.cameras.c.device_id).where(schema.cameras.c.camera_id == "vtest")).first()

    def events(model_name):
        with store.engine.connect() as conn:
            rows = conn.execute(select(schema.events.c.payload).where(
                schema.events.c.class_id == "work_zone_on_road")).all()
        return [r.payload for r in rows if (r.payload.get("model") or {}).get("name") == model_name]

    try:
        wait_for("heartbeat from the camera", camera_seen)
        release = registry.register(store, head.read_bytes(), name="vtest-cones", kind="fewshot", actor="admin:test",
                                    key=HubSigningKey.load_or_create(data_dir),
                                    backbone_sha256=load_model(head).backbone.sha256)
        registry.deploy(store, release.release_id, ["vtest"], "admin:test")
        accepted = wait_for("accepted model push", lambda: [p for p in pushes.state(store)
                                                             if p["status"] == "accepted"])
        assert accepted[0]["release_id"] == release.release_id and accepted[0]["device_id"] == "box-teach"
        cones = wait_for("cone event from the new model", lambda: events("vtest-cones"))
        assert cones[0]["model"]["sha256"] == release.sha256 and "traffic_cone" in cones[0]["labels"]
        assert not events("coco-nanodet")  # the model without cones never saw the work zone
    finally:
        agent.stop()
        stop.set()
        time.sleep(0.3)
        store.close()
