import shutil
import subprocess
import sys

import numpy as np
import pytest

from models.evaluate import LabelError, average_precision, evaluate, match_image, read_yolo_labels


def _write_labels(path, rows, w, h):
    lines = [f"{c} {(x1 + x2) / 2 / w} {(y1 + y2) / 2 / h} {(x2 - x1) / w} {(y2 - y1) / h}"
             for c, x1, y1, x2, y2 in rows]
    path.write_text("\n".join(lines) + "\n")


def test_perfect_predictions_score_one(tmp_path):
    _write_labels(tmp_path / "a.txt", [(0, 10, 10, 50, 50), (1, 60, 60, 90, 90)], 100, 100)
    truth = {"a": (np.array([[10, 10, 50, 50], [60, 60, 90, 90]], np.float32), np.array([0.9, 0.8], np.float32),
                   np.array([0, 1], np.int32), (100, 100))}
    images = [tmp_path / "a.jpg"]
    report = evaluate(images, tmp_path, lambda paths: [truth[p.stem] for p in paths], ["x", "y"])
    for c in report.per_class:
        assert (c.precision, c.recall, c.ap50) == (1.0, 1.0, 1.0)
        assert c.ap50_95 == pytest.approx(1.0)


def test_false_positive_and_miss_lower_the_figures(tmp_path):
    _write_labels(tmp_path / "a.txt", [(0, 10, 10, 50, 50), (0, 60, 60, 90, 90)], 100, 100)
    pred = (np.array([[10, 10, 50, 50], [0, 0, 5, 5]], np.float32), np.array([0.9, 0.95], np.float32),
            np.array([0, 0], np.int32), (100, 100))
    report = evaluate([tmp_path / "a.jpg"], tmp_path, lambda paths: [pred], ["x"])
    c = report.per_class[0]
    assert c.precision == 0.5 and c.recall == 0.5
    assert 0 < c.ap50 < 0.5  # the highest-scored detection is the false one


def test_iou_threshold_ladder():
    hits = match_image(np.array([[0, 0, 10, 10]], np.float32), np.array([1.0]), np.array([[0, 0, 10, 13]], np.float32))
    # IoU = 100/130 = 0.77: a hit at 0.50..0.75, a miss from 0.80 up
    assert hits[0].tolist() == [True] * 6 + [False] * 4


def test_average_precision_edge_cases():
    assert np.isnan(average_precision(np.array([]), np.array([], bool), 0))
    assert average_precision(np.array([]), np.array([], bool), 3) == 0.0


def test_bad_label_line_names_file_and_line(tmp_path):
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.1 0.1\nbanana\n")
    with pytest.raises(LabelError, match=r"a\.txt:2"):
        read_yolo_labels(tmp_path / "a.txt", 10, 10)


def test_eval_command_on_real_images(tmp_path, dog_jpg, person_jpg):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    shutil.copy(dog_jpg, images / "dog.jpg")
    shutil.copy(person_jpg, images / "person.jpg")
    # COCO ids: person 0, bicycle 1, truck 7, dog 16, horse 17
    _write_labels(labels / "dog.txt", [(1, 125, 135, 568, 415), (16, 133, 222, 312, 540), (7, 466, 74, 695, 170)],
                  768, 576)
    _write_labels(labels / "person.txt", [(0, 190, 100, 275, 375), (17, 405, 138, 602, 345), (16, 65, 263, 205, 343)],
                  640, 424)
    result = subprocess.run([sys.executable, "-m", "cityeye", "models", "eval", "--images", str(images),
                             "--labels", str(labels)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert float(rows["bicycle"][4]) == 1.0  # recall
    assert float(rows["dog"][4]) == 1.0
    assert float(rows["horse"][5]) == 1.0  # mAP50
    assert "(2 images)" in result.stdout
