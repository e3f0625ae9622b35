"""Reviewers' labels on a case's frame, and the labels file that teaches a model from them.

A reviewer draws, moves and relabels boxes on a case's snapshot, or says nothing is there; until
then the frame's labels are the detector's own boxes (pre-labels to correct). The export turns the
review loop into training data for `cityeye models dataset`: labelled frames as drawn; confirmed
cases without labels as positives (the event's box and label); voided ones as hard negatives for the
label the detector wrongly saw.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from hub.cases.lifecycle import CaseStatus
from hub.storage import schema
from hub.storage.core import StoreBase
from hub.storage.db import utcnow
from protocol.catalog import default_catalog
from protocol.label_names import COCO_ZH, known_zh

LABEL = re.compile(r"^[a-z0-9][a-z0-9_ ]{0,63}$")
CONFIRMED = frozenset(s.value for s in CaseStatus) - {CaseStatus.PENDING_REVIEW.value, CaseStatus.VOID.value}


class LabelError(ValueError):
    """A labelling request that names an unknown case, frame or label, or a bad box (HTTP 422/404)."""


@dataclass(frozen=True)
class FrameLabels:
    case_id: str
    image_sha256: str
    camera_id: str | None
    taken_at: datetime
    nothing: bool
    boxes: list[dict[str, Any]]  # {"label", "box": [x1, y1, x2, y2]} normalised
    source: str  # reviewer: saved by a person; detector: the events' own boxes, to correct
    labelled_by: str | None = None


def known_labels(store: StoreBase) -> set[str]:
    """Every label the catalog's classes use, and those an admin added."""
    names = {label for c in default_catalog().classes for label in c.labels}
    with store.engine.connect() as conn:
        names |= {r[0] for r in conn.execute(select(schema.label_names.c.name))}
    return names


@dataclass(frozen=True)
class LabelName:
    """A label as reviewers read it: its id (what the model outputs) and its display names."""

    id: str
    name_zh: str | None  # None: an admin-added label from before display names (shown by its id)
    name_en: str
    source: str  # detector (COCO), catalog (protocol/catalog.yaml) or admin (added on this hub)


def label_names(store: StoreBase) -> list[LabelName]:
    """Every label a box may have, with its names: the catalog's and COCO's from protocol.label_names, an
    admin-added one's as the admin gave them."""
    catalog = {label for c in default_catalog().classes for label in c.labels}
    out = {label: LabelName(label, known_zh(label), label.replace("_", " "),
                            "detector" if label in COCO_ZH else "catalog") for label in catalog}
    n = schema.label_names
    with store.engine.connect() as conn:
        for row in conn.execute(select(n.c.name, n.c.name_zh, n.c.name_en)):
            if row.name not in out:
                out[row.name] = LabelName(row.name, row.name_zh, row.name_en or row.name.replace("_", " "), "admin")
    return sorted(out.values(), key=lambda x: x.id)


def add_label(store: StoreBase, name: str, actor: str, *, name_zh: str, name_en: str | None = None) -> None:
    """Add a label with its display names (zh-CN required), or rename a label an admin added before.
    The catalog's own labels keep their names (protocol.label_names)."""
    if not LABEL.match(name):
        raise LabelError(f"label {name!r} must be 1-64 lowercase letters, digits, '_' or spaces")
    name_zh = name_zh.strip()
    if not name_zh:
        raise LabelError("name_zh: a new label needs its Chinese name (what reviewers read)")
    catalog = {label for c in default_catalog().classes for label in c.labels}
    if name in catalog:
        return
    n = schema.label_names

    def tx(conn: Connection) -> None:
        values = {"name_zh": name_zh, "name_en": (name_en or "").strip() or None}
        if conn.execute(select(n.c.name).where(n.c.name == name)).first() is None:
            conn.execute(n.insert().values(name=name, created_by=actor, created_at=utcnow(), **values))
        else:
            conn.execute(update(n).where(n.c.name == name).values(**values))

    store.write(tx)


def _frames(conn: Connection, case_id: str) -> list[Any]:
    """The case's snapshots, newest first: (sha256, camera_id, observed_at, payload)."""
    e, m = schema.events, schema.media
    return list(conn.execute(
        select(m.c.sha256, e.c.camera_id, e.c.observed_at, e.c.payload).join(e, e.c.id == m.c.event_pk)
        .where(e.c.case_id == case_id, m.c.kind == "snapshot").order_by(e.c.observed_at.desc(), e.c.id.desc())))


def _payload(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else json.loads(raw or "{}")


def _detector_boxes(payload: dict[str, Any]) -> list[dict[str, Any]]:
    box = payload.get("box")
    labels = payload.get("labels") or []
    if not box or not labels:
        return []
    return [{"label": labels[0], "box": [box["x1"], box["y1"], box["x2"], box["y2"]]}]


def get_labels(store: StoreBase, case_id: str) -> FrameLabels:
    with store.engine.connect() as conn:
        if conn.execute(select(schema.cases.c.case_id).where(schema.cases.c.case_id == case_id)).first() is None:
            raise LookupError(f"no case {case_id!r}")
        saved = conn.execute(select(schema.frame_labels).where(schema.frame_labels.c.case_id == case_id)).first()
        if saved is not None:
            return FrameLabels(case_id, saved.image_sha256, saved.camera_id, saved.taken_at, saved.nothing_here,
                               list(saved.boxes), "reviewer", saved.labelled_by)
        frames = _frames(conn, case_id)
    if not frames:
        raise LookupError(f"case {case_id!r} has no snapshot to label")
    sha, camera_id, observed_at, payload = frames[0]
    return FrameLabels(case_id, sha, camera_id, observed_at, False, _detector_boxes(_payload(payload)), "detector")


def check_boxes(boxes: Sequence[dict[str, Any]], known: set[str] | None, where: str = "boxes"
                ) -> list[dict[str, Any]]:
    """Normalised xyxy boxes with labels from `known` (None: any well-formed label, a detector's own)."""
    checked = []
    for i, item in enumerate(boxes):
        label, box = item.get("label"), item.get("box")
        at = f"{where}[{i}]"
        if not isinstance(label, str) or not label or len(label) > 64 or (known is not None and label not in known):
            raise LabelError(f"{at}.label: {label!r} is not a catalog label or one an admin added")
        if not (isinstance(box, list | tuple) and len(box) == 4 and all(isinstance(v, int | float) for v in box)):
            raise LabelError(f"{at}.box: expected [x1, y1, x2, y2] normalised, got {box!r}")
        x1, y1, x2, y2 = (float(v) for v in box)
        if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
            raise LabelError(f"{at}.box: {list(box)} must satisfy 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1")
        checked.append({"label": label, "box": [x1, y1, x2, y2]})
    return checked


def set_labels(store: StoreBase, case_id: str, boxes: Sequence[dict[str, Any]], *, nothing: bool, actor: str,
               image_sha256: str | None = None) -> FrameLabels:
    """Save the frame's boxes (replacing earlier ones) or "nothing here" (no boxes)."""
    if nothing and boxes:
        raise LabelError("a frame with nothing on it has no boxes")
    checked = check_boxes(boxes, known_labels(store))
    with store.engine.connect() as conn:
        frames = _frames(conn, case_id)
    if not frames:
        raise LookupError(f"case {case_id!r} does not exist or has no snapshot to label")
    chosen = next((f for f in frames if f[0] == image_sha256), None) if image_sha256 else frames[0]
    if chosen is None:
        raise LabelError(f"image_sha256: {image_sha256} is not a snapshot of case {case_id}")
    sha, camera_id, observed_at, _ = chosen

    def tx(conn: Connection) -> None:
        t = schema.frame_labels
        conn.execute(t.delete().where(t.c.case_id == case_id))
        conn.execute(t.insert().values(case_id=case_id, image_sha256=sha, camera_id=camera_id, taken_at=observed_at,
                                       nothing_here=nothing, boxes=checked, labelled_by=actor, labelled_at=utcnow()))

    store.write(tx)
    return get_labels(store, case_id)


def _record(sha: str, camera_id: str | None, taken_at: datetime, source: str, boxes: list[dict[str, Any]],
            negatives: Sequence[str] = ()) -> dict[str, Any]:
    return {"image": f"frames/{sha}.jpg", "camera_id": camera_id or "unknown", "taken_at": taken_at.isoformat(),
            "source": source, "boxes": boxes, "negatives": list(negatives)}


def export_records(store: StoreBase) -> list[dict[str, Any]]:
    """The labels file's records (models/dataset.py format), images named by their sha256."""
    records = []
    with store.engine.connect() as conn:
        labelled = {r.case_id: r for r in conn.execute(select(schema.frame_labels))}
        for r in labelled.values():
            records.append(_record(r.image_sha256, r.camera_id, r.taken_at, "nothing" if r.nothing_here else "review",
                                   list(r.boxes)))
        reviewed = conn.execute(select(schema.cases.c.case_id, schema.cases.c.status).where(
            schema.cases.c.status != CaseStatus.PENDING_REVIEW.value, schema.cases.c.source == "edge"))
        for case_id, status in list(reviewed):
            if case_id in labelled:
                continue
            frames = _frames(conn, case_id)
            if not frames:
                continue
            sha, camera_id, observed_at, payload = frames[0]
            found = _detector_boxes(_payload(payload))
            if status == CaseStatus.VOID.value:
                records.append(_record(sha, camera_id, observed_at, "voided", [], [b["label"] for b in found]))
            elif status in CONFIRMED and found:
                records.append(_record(sha, camera_id, observed_at, "confirmed", found))
    return records


def export_zip(store: StoreBase) -> bytes:
    """labels.jsonl and frames/<sha256>.jpg, ready for `cityeye models dataset labels.jsonl`: cases' labels
    and reviewed sampled frames (hub.releases.sampled, source `pseudo`)."""
    from hub.releases import sampled  # it builds on this module's checks

    records = export_records(store) + sampled.export_records(store)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for sha in sorted({r["image"] for r in records}):
            zf.writestr(sha, store.evidence_bytes(sha.removeprefix("frames/").removesuffix(".jpg")))
        zf.writestr("labels.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return buffer.getvalue()
