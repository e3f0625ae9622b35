"""Sampled frames with pre-labels: the labelling queue that trains a student model on the bureau's views.

`cityeye models sample --prelabel MODEL --hub URL` picks diverse frames from the bureau's cameras, runs the
detector in service on them and uploads each frame with its boxes as proposals. A reviewer opens the
frame in the box editor, where the proposals are already drawn (pre-labels), and only corrects them:
moves a box, fixes a label, deletes a false one, adds what the detector missed, or says nothing is
there. Until then the frame is not training data. The labels export gives reviewed frames as source
`pseudo` (their boxes started as the detector's), so `cityeye models dataset` can take them or leave
them out (`--no-pseudo`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from hub.evidence.jpeg import jpeg_error
from hub.releases.labels import LabelError, check_boxes, known_labels
from hub.storage import schema
from hub.storage.core import StoreBase
from hub.storage.db import utcnow

MAX_PROPOSALS = 200


@dataclass(frozen=True)
class SampledFrame:
    frame_id: str
    image_sha256: str
    camera_id: str
    taken_at: datetime
    proposals: list[dict[str, Any]]
    proposed_by: dict[str, Any] | None
    boxes: list[dict[str, Any]] | None  # None: not reviewed yet
    nothing: bool
    labelled_by: str | None
    labelled_at: datetime | None

    @property
    def reviewed(self) -> bool:
        return self.labelled_at is not None

    @property
    def shown(self) -> list[dict[str, Any]]:
        """What the box editor draws: the reviewer's boxes, else the detector's proposals."""
        return self.boxes if self.boxes is not None else [{"label": p["label"], "box": p["box"]}
                                                          for p in self.proposals]


def _frame(row: Any) -> SampledFrame:
    return SampledFrame(row.frame_id, row.image_sha256, row.camera_id, row.taken_at, list(row.proposals or []),
                        row.proposed_by, None if row.boxes is None else list(row.boxes), bool(row.nothing_here),
                        row.labelled_by, row.labelled_at)


def _proposals(raw: Sequence[Any]) -> list[dict[str, Any]]:
    """Proposals are the detector's boxes: any label it has (the catalog does not bound a detector's names)."""
    if len(raw) > MAX_PROPOSALS:
        raise LabelError(f"proposals: at most {MAX_PROPOSALS} boxes per frame, got {len(raw)}")
    scores = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise LabelError(f"proposals[{i}]: expected an object with label, box and score")
        score = item.get("score", 1.0)
        if not isinstance(score, int | float) or not 0 <= score <= 1:
            raise LabelError(f"proposals[{i}].score: a number from 0 to 1, got {score!r}")
        scores.append(round(float(score), 4))
    return [{**box, "score": score} for box, score in zip(check_boxes(raw, None, "proposals"), scores, strict=True)]


def add_frame(store: StoreBase, jpeg: bytes, *, camera_id: str, taken_at: datetime, proposals: Sequence[Any],
              proposed_by: dict[str, Any] | None, actor: str) -> SampledFrame:
    """Queue a sampled frame with its pre-labels; the same image twice is the same frame (kept as it is)."""
    problem = jpeg_error(jpeg)
    if problem:
        raise LabelError(f"image: not a usable JPEG ({problem})")
    checked = _proposals(proposals)
    sha = hashlib.sha256(jpeg).hexdigest()
    store.evidence.put(jpeg, sha)
    frame_id = sha[:32]

    def tx(conn: Connection) -> None:
        t = schema.sampled_frames
        if conn.execute(select(t.c.frame_id).where(t.c.frame_id == frame_id)).first() is None:
            conn.execute(t.insert().values(frame_id=frame_id, image_sha256=sha, camera_id=camera_id,
                                           taken_at=taken_at, proposals=checked, proposed_by=proposed_by,
                                           uploaded_by=actor, uploaded_at=utcnow(), nothing_here=False))

    store.write(tx)
    return get_frame(store, frame_id)


def get_frame(store: StoreBase, frame_id: str) -> SampledFrame:
    with store.engine.connect() as conn:
        row = conn.execute(select(schema.sampled_frames).where(schema.sampled_frames.c.frame_id == frame_id)).first()
    if row is None:
        raise LookupError(f"no sampled frame {frame_id!r}")
    return _frame(row)


def list_frames(store: StoreBase, *, reviewed: bool | None = None, limit: int = 100) -> tuple[list[SampledFrame], int]:
    """Frames in upload order (oldest first: the queue), and how many match in all."""
    t = schema.sampled_frames
    query = select(t)
    counted = select(func.count()).select_from(t)
    if reviewed is not None:
        cond = t.c.labelled_at.is_not(None) if reviewed else t.c.labelled_at.is_(None)
        query, counted = query.where(cond), counted.where(cond)
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(t.c.uploaded_at, t.c.frame_id).limit(limit)).all()
        total = int(conn.execute(counted).scalar() or 0)
    return [_frame(r) for r in rows], total


def review_frame(store: StoreBase, frame_id: str, boxes: Sequence[dict[str, Any]], *, nothing: bool,
                 actor: str) -> SampledFrame:
    """Save the reviewer's corrected boxes (or "nothing here") over the proposals."""
    if nothing and boxes:
        raise LabelError("a frame with nothing on it has no boxes")
    checked = check_boxes(boxes, known_labels(store))
    get_frame(store, frame_id)

    def tx(conn: Connection) -> None:
        t = schema.sampled_frames
        conn.execute(update(t).where(t.c.frame_id == frame_id).values(
            boxes=checked, nothing_here=nothing, labelled_by=actor, labelled_at=utcnow()))

    store.write(tx)
    return get_frame(store, frame_id)


def export_records(store: StoreBase) -> list[dict[str, Any]]:
    """Reviewed sampled frames as labels-file records (models/dataset.py): source `pseudo`, or `nothing`."""
    t = schema.sampled_frames
    with store.engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.labelled_at.is_not(None)).order_by(t.c.taken_at)).all()
    records = []
    for row in rows:
        frame = _frame(row)
        records.append({"image": f"frames/{frame.image_sha256}.jpg", "camera_id": frame.camera_id,
                        "taken_at": frame.taken_at.isoformat(), "source": "nothing" if frame.nothing else "pseudo",
                        "boxes": frame.boxes or [], "negatives": [],
                        "proposed_by": (frame.proposed_by or {}).get("name"), "proposals": len(frame.proposals)})
    return records
