"""Builders for hub tests: wire events with media, and a one-line ingest."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.storage.store import Store
from protocol.messages import GroundPoint, MediaKind, MediaRef, NormBox, ProblemEvent, ProblemState

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC


def jpeg_bytes(tag: str) -> bytes:
    """Small bytes that stand in for a JPEG in store tests (the store doesn't decode images)."""
    return b"\xff\xd8\xff\xe0" + tag.encode() + b"\xff\xd9"


def make_event(
    *,
    event_id: str | None = None,
    problem_id: str = "prob-0001",
    device_id: str = "box-1",
    camera_id: str = "cam-1",
    class_id: str = "illegal_car_parking",
    state: ProblemState = ProblemState.OPENED,
    zone: str | None = "np-1",
    box: tuple[float, float, float, float] = (0.1, 0.1, 0.3, 0.3),
    at: datetime = T0,
    ground: GroundPoint | None = None,
    media_tag: str | None = None,
) -> tuple[ProblemEvent, dict[str, bytes]]:
    """A ProblemEvent with one snapshot, and its media bytes keyed by name."""
    data = jpeg_bytes(media_tag or secrets.token_hex(4))
    ref = MediaRef(
        name="snapshot.jpg", kind=MediaKind.SNAPSHOT, content_type="image/jpeg", size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    event = ProblemEvent(
        event_id=event_id or f"ev-{secrets.token_hex(6)}",
        problem_id=problem_id,
        device_id=device_id,
        camera_id=camera_id,
        class_id=class_id,
        state=state,
        zone=zone,
        box=NormBox(x1=box[0], y1=box[1], x2=box[2], y2=box[3]),
        score=0.9,
        first_seen=at - timedelta(minutes=5),
        observed_at=at,
        dwell_s=300.0,
        ground=ground,
        media=[ref],
    )
    return event, {"snapshot.jpg": data}


def ingest(store: Store, event: ProblemEvent, media: dict[str, bytes], seq: int = 1) -> Any:
    return store.ingest_event(event, media, manifest=b'{"m":1}', signature=b"sig" * 21 + b"s", seq=seq)
