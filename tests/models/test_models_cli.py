import subprocess
import sys

import cv2


def _cityeye(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cityeye", *args], capture_output=True, text=True, timeout=120)


def test_detect_lists_objects_and_writes_annotated_image(dog_jpg, tmp_path):
    out = tmp_path / "annotated.jpg"
    result = _cityeye("models", "detect", str(dog_jpg), "--out", str(out))
    assert result.returncode == 0, result.stderr
    labels = {line.split()[0] for line in result.stdout.splitlines()[1:] if line.startswith("  ")}
    assert {"bicycle", "dog"} <= labels and labels & {"truck", "car"}
    annotated = cv2.imread(str(out))
    assert annotated is not None and annotated.shape == cv2.imread(str(dog_jpg)).shape
    assert (annotated != cv2.imread(str(dog_jpg))).any()


def test_detect_on_a_video_frame(vtest_avi):
    result = _cityeye("models", "detect", str(vtest_avi), "--frame", "300")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" person ") >= 6


def test_detect_errors_are_clear(tmp_path):
    missing = _cityeye("models", "detect", str(tmp_path / "nope.jpg"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a jpeg at all")
    bad = _cityeye("models", "detect", str(junk))
    assert bad.returncode == 1 and "not a readable image" in bad.stderr
    unknown = _cityeye("models", "detect", str(junk), "--model", "no-such-model")
    assert unknown.returncode == 1 and "cityeye models pull no-such-model" in unknown.stderr


def test_help_explains_every_action():
    result = _cityeye("models", "--help")
    assert result.returncode == 0
    for action in ("pull", "list", "detect", "eval"):
        assert action in result.stdout
