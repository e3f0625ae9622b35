"""Shared by the delivery tests and their child processes: sample events, enrollment, hub/agent mains.

Run as a script (`python tests/delivery_support.py hub|agent ...`) it becomes a real hub or agent
process, so tests can kill -9 it.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol.messages import MediaKind, MediaRef, NormBox, ProblemEvent, ProblemState


def small_jpeg(seed: int = 0, size_wh: tuple[int, int] = (64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (size_wh[1], size_wh[0], 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return buf.tobytes()


def make_event(device_id: str, n: int, jpeg: bytes, *, state: ProblemState = ProblemState.OPENED,
               event_id: str | None = None) -> tuple[ProblemEvent, dict[str, bytes]]:
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n)
    ref = MediaRef(name="snapshot.jpg", kind=MediaKind.SNAPSHOT, content_type="image/jpeg", size=len(jpeg),
                   sha256=hashlib.sha256(jpeg).hexdigest())
    event = ProblemEvent(event_id=event_id or f"ev-{device_id}-{n:06d}", problem_id=f"pr-{n // 10:06d}",
                         device_id=device_id, camera_id="cam1", class_id="illegal_parking", state=state,
                         box=NormBox(x1=0.1, y1=0.1, x2=0.5, y2=0.5), score=0.9, first_seen=now,
                         observed_at=now, dwell_s=60.0, media=[ref])
    return event, {"snapshot.jpg": jpeg}
