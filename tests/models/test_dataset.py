"""Labels file -> YOLO dataset (models/dataset.py) and the frame sampler (models/sampler.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
import yaml

from cityeye.cli import main
from models.dataset import DatasetError, load_dataset, read_labels, split_frames, summarise, write_yolo
from models.evaluate import read_yolo_labels
from models.sampler import dhash, hamming, sample_frames

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _frames(tmp_path, spec: list[tuple[str, int, list]]) -> list[dict]:
    """spec: (camera, day offset, boxes) -> labels records with a real JPEG each."""
    (tmp_path / "frames").mkdir(exist_ok=True)
    records = []
    for i, (camera, day, boxes) in enumerate(spec):
        image = np.full((60, 80, 3), i * 7 % 255, np.uint8)
        name = f"frames/{camera}-{i}.jpg"
        cv2.imwrite(str(tmp_path / name), image)
        records.append({"image": name, "camera_id": camera,
                        "taken_at": (T0 + timedelta(days=day, minutes=i)).isoformat(),
                        "source": "review" if boxes else "nothing",
                        "boxes": [{"label": label, "box": box} for label, box in boxes]})
    return records


def _write(tmp_path, records) -> object:
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


CONE = ("traffic_cone", [0.1, 0.2, 0.3, 0.6])
BIN = ("overflowing_bin", [0.5, 0.5, 0.9, 0.9])


def test_split_keeps_each_camera_day_on_one_side(tmp_path):
    spec = [(cam, day, [CONE]) for cam in ("a", "b", "c") for day in range(4) for _ in range(3)]
    frames = read_labels(_write(tmp_path, _frames(tmp_path, spec)))
    split = split_frames(frames, 0.3)
    train_groups = {f.group for f in split.train}
    val_groups = {f.group for f in split.val}
    assert split.by == "camera-day" and not train_groups & val_groups
    assert len(split.train) + len(split.val) == 36 and 0.2 <= len(split.val) / 36 <= 0.45


def test_single_camera_day_is_split_by_time(tmp_path):
    frames = read_labels(_write(tmp_path, _frames(tmp_path, [("a", 0, [CONE])] * 10)))
    split = split_frames(frames, 0.3)
    assert split.by == "time" and len(split.val) == 3
    assert max(f.taken_at for f in split.train) < min(f.taken_at for f in split.val)


def test_yolo_dataset_and_summary(tmp_path):
    spec = [("a", 0, [CONE, CONE]), ("a", 0, [BIN]), ("a", 1, []), ("b", 0, [CONE]), ("b", 1, [CONE, BIN])]
    records = _frames(tmp_path, spec)
    records[2]["source"], records[2]["negatives"] = "voided", ["overflowing_bin"]
    out = tmp_path / "ds"
    split, names = write_yolo(read_labels(_write(tmp_path, records)), out, val_fraction=0.4)
    assert names == ["overflowing_bin", "traffic_cone"]
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "overflowing_bin", 1: "traffic_cone"} and data["split_by"] == "camera-day"
    dataset = load_dataset(out)
    assert sum(len(v) for v in dataset.frames.values()) == 5
    for part in ("train", "val"):
        for frame in dataset.frames[part]:
            cls, xyxy = read_yolo_labels(dataset.labels_dir(part) / f"{frame.image.stem}.txt", 80, 60)
            assert sorted(cls.tolist()) == sorted(names.index(b.label) for b in frame.boxes)
            for box in frame.boxes:
                if box.label == "traffic_cone":
                    assert np.allclose(xyxy[cls == 1][0], [8, 12, 24, 36], atol=0.01)
    summary = {c.label: c for c in summarise(split)}
    assert sum(summary["traffic_cone"].boxes.values()) == 4
    assert sum(summary["overflowing_bin"].hard_negatives.values()) == 1


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: r.update(taken_at="yesterday"), "labels.jsonl:2: taken_at 'yesterday' is not an ISO 8601"),
    (lambda r: r["boxes"][0].update(box=[0.5, 0.2, 0.3, 0.6]), r"labels.jsonl:2: boxes\[0\]: box .* must satisfy"),
    (lambda r: r.update(source="maybe"), "labels.jsonl:2: source must be one of"),
    (lambda r: r.update(image="frames/missing.jpg"), "labels.jsonl:2: image .*missing.jpg does not exist"),
    (lambda r: r.pop("camera_id"), "labels.jsonl:2: field 'camera_id' is missing"),
])
def test_bad_labels_name_the_line_and_field(tmp_path, edit, message):
    records = _frames(tmp_path, [("a", 0, [CONE]), ("a", 0, [CONE])])
    edit(records[1])
    with pytest.raises(DatasetError, match=message):
        read_labels(_write(tmp_path, records))


def test_dataset_command_prints_the_summary(tmp_path, capsys):
    spec = [(cam, day, [CONE]) for cam in ("a", "b") for day in range(2)]
    labels = _write(tmp_path, _frames(tmp_path, spec))
    assert main(["models", "dataset", str(labels), "--out", str(tmp_path / "ds"), "--val", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "split by camera-day: 3 train frames, 1 val frames" in out
    assert "traffic_cone" in out and "data.yaml" in out
    assert main(["models", "dataset", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "x")]) == 1
    assert "cannot read labels" in capsys.readouterr().err


def test_dhash_tells_near_duplicates_from_changes():
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (9, 9), 3)
    noisy = np.clip(scene.astype(np.int16) + rng.integers(-3, 4, scene.shape), 0, 255).astype(np.uint8)
    other = cv2.flip(scene, 1)
    assert hamming(dhash(scene), dhash(noisy)) <= 4 < hamming(dhash(scene), dhash(other))


def test_sampler_drops_near_duplicates_and_spreads_over_cameras(tmp_path):
    rng = np.random.default_rng(1)
    scenes = [cv2.GaussianBlur(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8), (9, 9), 3) for _ in range(3)]
    videos = []
    for cam, order in (("cam1", [0] * 20 + [1] * 20), ("cam2", [2] * 40)):
        path = tmp_path / f"{cam}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 96))
        for k in order:
            writer.write(scenes[k])
        writer.release()
        videos.append((cam, path, T0))
    picked = sample_frames(videos, 10)
    by_camera = {c: [s for s in picked if s.camera_id == c] for c in ("cam1", "cam2")}
    assert len(by_camera["cam1"]) == 2  # one per distinct scene, the repeats dropped
    assert len(by_camera["cam2"]) == 1
    assert by_camera["cam1"][1].taken_at - by_camera["cam1"][0].taken_at >= timedelta(seconds=1)


def test_sample_command_writes_a_labels_file(tmp_path, capsys):
    rng = np.random.default_rng(2)
    path = tmp_path / "gate.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(4):
        frame = cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), (7, 7), 2)
        for _ in range(10):
            writer.write(frame)
    writer.release()
    out = tmp_path / "sampled"
    assert main(["models", "sample", f"gate={path}", "--count", "3", "--start", "2026-12-01T08:00:00+08:00",
                 "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert len(records) == 3 and {r["camera_id"] for r in records} == {"gate"}
    assert all((out / r["image"]).is_file() for r in records)
    assert records[0]["taken_at"].startswith("2026-12-01T08:00")
