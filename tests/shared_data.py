"""Paths to ../shared sample data, skipping the test with a reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


def shared_file(relative: str) -> Path:
    """A file from ../shared/fixtures, or skip the test saying what is missing."""
    path = SHARED_FIXTURES / relative
    if not path.is_file():
        pytest.skip(f"sample data {path} is absent (a clone without ../shared): nothing to test on")
    return path


def vtest_clip(folder: Path, seconds: float) -> Path:
    """The first `seconds` of vtest.avi (a plaza: pedestrians, a parked van and car) as an MJPEG AVI in
    `folder`: short videos keep the live-run tests short."""
    import cv2

    cap = cv2.VideoCapture(str(shared_file("video/vtest.avi")))
    fps = cap.get(cv2.CAP_PROP_FPS)
    path = folder / "vtest-short.avi"
    writer = None
    for _ in range(int(seconds * fps)):
        ok, image = cap.read()
        assert ok
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, image.shape[1::-1])
        writer.write(image)
    assert writer is not None
    writer.release()
    cap.release()
    return path
