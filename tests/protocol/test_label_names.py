"""Every label of the default model has a Chinese name for the evidence overlay."""

from __future__ import annotations

from pathlib import Path

import yaml

from protocol.label_names import COCO_ZH, label_zh


def test_every_default_model_label_has_a_chinese_name() -> None:
    manifest = Path(__file__).resolve().parents[2] / "models" / "coco-nanodet.yaml"
    labels = yaml.safe_load(manifest.read_text(encoding="utf-8"))["labels"]
    assert set(labels) == set(COCO_ZH)
    assert label_zh("car") == "汽车" and label_zh("shed") == "shed"  # another model's own label stays as it is
