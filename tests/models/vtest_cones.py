"""The traffic cones along the tape in vtest.avi, labelled by hand once (pixel boxes at 768x576).

The four cones stand still for the whole clip; a walker hides cone 1 in a few frames, and those
boxes are left out, as a reviewer would leave them out. Frames are every 2 s of the 80 s clip.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2

WIDTH, HEIGHT = 768, 576
CONES = ((37, 173, 49, 192), (164, 187, 177, 206), (292, 186, 307, 209), (441, 177, 454, 201))
HIDDEN = {(260, 1), (660, 1), (680, 1)}  # (frame index, cone index) a walker covers
FRAME_STEP = 20  # 10 fps: one frame per 2 s
CLIP_START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def cone_boxes(index: int) -> list[list[float]]:
    """Normalised xyxy of the cones visible in frame `index`."""
    return [[x1 / WIDTH, y1 / HEIGHT, x2 / WIDTH, y2 / HEIGHT]
            for k, (x1, y1, x2, y2) in enumerate(CONES) if (index, k) not in HIDDEN]


def extract_frames(video: Path, out: Path, step: int = FRAME_STEP) -> list[tuple[int, Path]]:
    """Every `step`-th frame as JPEG; returns (frame index, path)."""
    out.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(str(video))
    written, index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % step == 0:
            path = out / f"vtest-{index:04d}.jpg"
            cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
            written.append((index, path))
        index += 1
    capture.release()
    return written


def taken_at(index: int) -> datetime:
    return CLIP_START + timedelta(seconds=index / 10)


def write_labels(frames: list[tuple[int, Path]], labels_file: Path, camera_id: str = "vtest") -> Path:
    """A labels file (models/dataset.py format) with the cones of every frame."""
    lines = [json.dumps({"image": str(path.relative_to(labels_file.parent)), "camera_id": camera_id,
                         "taken_at": taken_at(index).isoformat(), "source": "review",
                         "boxes": [{"label": "traffic_cone", "box": b} for b in cone_boxes(index)]})
             for index, path in frames]
    labels_file.write_text("\n".join(lines) + "\n")
    return labels_file
