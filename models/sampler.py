"""Pick diverse frames to label: spread over cameras and time, near-duplicates dropped.

A fixed camera shows the same scene thousands of times; labelling two near-identical frames teaches
a model nothing new. Candidates are taken at an even spacing through each video, then picked round
robin over the cameras, and a candidate whose difference hash (64-bit dHash of a 9x8 grey thumbnail)
is within `max_distance` bits of a frame already kept from the same camera is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np


def dhash(image: np.ndarray) -> int:
    """64-bit difference hash: for each of 8 rows, whether each of 8 pixels is brighter than its right neighbour."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


@dataclass(frozen=True, eq=False)
class Sampled:
    camera_id: str
    index: int  # frame index in its video
    taken_at: datetime
    image: np.ndarray


def _candidates(camera_id: str, video: str | Path, wanted: int, start: datetime) -> Iterator[Sampled]:
    """About 2 x `wanted` frames evenly spaced through the video (every 2 s for a stream of unknown length,
    which ends after 2 x `wanted`: a live stream has no end of its own)."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise ValueError(f"{video}: not a readable video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    step = max(1, frames // (2 * wanted)) if frames > 0 else max(1, round(2 * fps))
    index = yielded = 0
    try:
        while (frames > 0 or yielded < 2 * wanted) and capture.grab():
            if index % step == 0:
                ok, frame = capture.retrieve()
                if ok:
                    yielded += 1
                    yield Sampled(camera_id, index, start + timedelta(seconds=index / fps), frame)
            index += 1
    finally:
        capture.release()


def _spread(items: list[Sampled], wanted: int) -> list[Sampled]:
    if len(items) <= wanted:
        return items
    return [items[round(i)] for i in np.linspace(0, len(items) - 1, wanted)]


def sample_frames(videos: Sequence[tuple[str, str | Path, datetime]], count: int, *, max_distance: int | None = 4,
                  on_progress: Callable[[int], object] | None = None) -> list[Sampled]:
    """Up to `count` frames from (camera_id, video file or stream URL, start time) sources: an equal share
    per camera, spread over its time, near-duplicates of a kept frame dropped (none when `max_distance` is
    None); in time order within a camera."""
    if count < 1 or not videos:
        raise ValueError(f"need at least one video and count >= 1, got {len(videos)} videos and count {count}")
    share = -(-count // len(videos))
    per_camera: list[list[Sampled]] = []
    for camera_id, path, start in videos:
        kept: list[Sampled] = []
        hashes: list[int] = []
        for candidate in _candidates(camera_id, path, share, start):
            h = dhash(candidate.image)
            if max_distance is None or all(hamming(h, other) > max_distance for other in hashes):
                hashes.append(h)
                kept.append(candidate)
            if on_progress:
                on_progress(1)
        per_camera.append(_spread(kept, share))
    interleaved = [s for group in zip(*[iter(p) for p in per_camera], strict=False) for s in group]
    taken = {id(s) for s in interleaved}
    rest = [s for p in per_camera for s in p if id(s) not in taken]
    return (interleaved + rest)[:count]
