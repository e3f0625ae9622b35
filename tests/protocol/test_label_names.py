"""Every label of the default model has a Chinese name for the evidence overlay."""

from __future__ import annotations

from pathlib import Path

import yaml

from protocol.catalog import default_catalog
from protocol.label_names import CATALOG_ZH, COCO_ZH, known_zh, label_zh


def test_every_default_model_label_has_a_chinese_name() -> None:
    manifest = Path(__file__).resolve().parents[2] / "models" / "coco-nanodet.yaml"
    labels = yaml.safe_load(manifest.read_text(encoding="utf-8"))["labels"]
    assert set(labels) == set(COCO_ZH)
    assert label_zh("car") == "汽车" and label_zh("lidar_blob") == "lidar_blob"  # another model's own label stays


def test_every_label_of_the_catalog_has_a_chinese_name() -> None:
    labels = {label for c in default_catalog().classes for label in c.labels}
    assert {label for label in labels if known_zh(label) is None} == set()
    assert not set(CATALOG_ZH) & set(COCO_ZH)  # one name per label
    assert label_zh("shed") == "棚子"
