"""`cityeye models train` with ultralytics: only where the [train] extra is installed (CI stays light)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest

from cityeye.cli import main
from models.cache import resolve
from models.train import TrainError, train_detector


def test_train_without_a_dataset_says_so(tmp_path):
    pytest.importorskip("ultralytics", reason="the [train] extra (ultralytics, PyTorch) is not installed")
    with pytest.raises(TrainError, match="no data.yaml"):
        train_detector(tmp_path, name="x")


def test_train_without_the_extra_names_it(tmp_path, capsys):
    try:
        import ultralytics  # noqa: F401
    except ImportError:
        assert main(["models", "train", "--data", str(tmp_path), "--name", "x"]) == 1
        assert "pip install 'cityeye[train]'" in capsys.readouterr().err
    else:
        pytest.skip("ultralytics is installed: the message for a box without it cannot show")


def test_train_one_epoch_exports_a_model_the_edge_runs(tmp_path, monkeypatch):
    pytest.importorskip("ultralytics", reason="the [train] extra (ultralytics, PyTorch) is not installed")
    from edge_agent.detect import Detector

    monkeypatch.setenv("CITYEYE_MODEL_DIR", str(tmp_path / "cache"))
    (tmp_path / "frames").mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(8):  # a bright square on noise: something to learn in one epoch
        image = rng.integers(0, 80, (128, 128, 3), dtype=np.uint8)
        x, y = 16 + 8 * i, 24 + 6 * i
        image[y:y + 32, x:x + 32] = 230
        cv2.imwrite(str(tmp_path / f"frames/{i}.jpg"), image)
        box = [x / 128, y / 128, (x + 32) / 128, (y + 32) / 128]
        lines.append(json.dumps({"image": f"frames/{i}.jpg", "camera_id": f"c{i % 2}",
                                 "taken_at": f"2026-12-0{1 + i % 3}T08:00:00+08:00",
                                 "boxes": [{"label": "square", "box": box}]}))
    (tmp_path / "labels.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["models", "dataset", str(tmp_path / "labels.jsonl"), "--out", str(tmp_path / "ds")]) == 0
    assert main(["models", "train", "--data", str(tmp_path / "ds"), "--epochs", "1", "--imgsz", "128",
                 "--name", "squares", "--runs", str(tmp_path / "runs")]) == 0
    detector = Detector.load("squares")
    assert detector.labels == ("square",) and detector.manifest.input.width == 128
    detector.detect([cv2.imread(str(tmp_path / "frames/0.jpg"))])
    # the ONNX alone is a release: its metadata holds the manifest (what an agent gets by download)
    metadata = {p.key: p.value for p in onnx.load(str(tmp_path / "cache/squares/model.onnx")).metadata_props}
    assert "cityeye.manifest" in metadata and "square" in metadata["names"]
    alone = tmp_path / "alone.onnx"
    alone.write_bytes((tmp_path / "cache/squares/model.onnx").read_bytes())
    assert resolve(alone).manifest.labels == ["square"]
    # the same command after a finished run exports again without training (ultralytics would refuse to resume)
    weights = tmp_path / "runs/squares/weights/last.pt"
    before = weights.stat().st_mtime_ns
    assert main(["models", "train", "--data", str(tmp_path / "ds"), "--epochs", "1", "--imgsz", "128",
                 "--name", "squares", "--runs", str(tmp_path / "runs")]) == 0
    assert weights.stat().st_mtime_ns == before
