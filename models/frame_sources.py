"""Frames from what an operator points at: a video file, a stream URL, an image, or a folder of images.

Used where a model must see a site's own footage (calibrating an int8 copy). Videos and streams are
sampled evenly over their time (models/sampler.py; a stream of unknown length one frame every 2 s), a
folder's images evenly over its sorted names. A corrupt image is skipped with a warning naming it; a
source that yields nothing is an error naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from models.evaluate import IMAGE_SUFFIXES, list_images
from models.sampler import sample_frames


class FrameSourceError(ValueError):
    pass


def _is_stream(source: str) -> bool:
    return "://" in source


def _images(paths: Sequence[Path], wanted: int, warn: Callable[[str], object]) -> list[np.ndarray]:
    picked = paths if len(paths) <= wanted else [paths[round(i)] for i in np.linspace(0, len(paths) - 1, wanted)]
    frames = []
    for path in picked:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            warn(f"skipping {path}: not a readable image")
        else:
            frames.append(image)
    return frames


def _video(source: str, wanted: int) -> list[np.ndarray]:
    try:
        sampled = sample_frames([(source, source, datetime.now(UTC))], wanted, max_distance=None)
    except ValueError as exc:  # cv2 cannot open it
        raise FrameSourceError(f"no readable frames in {source}: not a video, image or folder cv2 can read") from exc
    if not sampled:
        raise FrameSourceError(f"no readable frames in {source}: the video has no frames cv2 can decode")
    return [s.image for s in sampled]


def read_frames(sources: Sequence[str], count: int, *, size: tuple[int, int] | None = None,
                warn: Callable[[str], object] = lambda message: None) -> list[np.ndarray]:
    """Up to `count` HxWx3 uint8 BGR frames, an equal share from each source, in source order; resized to
    `size` (width, height) when given: the size the detector will see them at (a camera's sub-stream)."""
    if count < 1 or not sources:
        raise FrameSourceError(f"need at least one source and a count >= 1, got {len(sources)} and {count}")
    share = -(-count // len(sources))
    frames: list[np.ndarray] = []
    for source in sources:
        path = Path(source).expanduser()
        if _is_stream(source):
            found = _video(source, share)
        elif path.is_dir():
            images = list_images(path)
            if not images:
                raise FrameSourceError(f"no readable frames in {path}: a folder without images "
                                       f"({', '.join(sorted(IMAGE_SUFFIXES))})")
            found = _images(images, share, warn)
        elif not path.exists():
            raise FrameSourceError(f"{path} does not exist")
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            found = _images([path], share, warn)
        else:
            found = _video(str(path), share)
        frames.extend(found)
    if not frames:
        raise FrameSourceError(f"no readable frames in {', '.join(sources)}")
    frames = frames[:count]
    if size is not None:
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) if f.shape[1::-1] != size else f for f in frames]
    return frames
