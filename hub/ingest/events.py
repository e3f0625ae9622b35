"""Stored edge events read back with their proof (manifest, signature, media list): re-verification,
evidence packages and tests read them here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from hub.storage import schema
from hub.storage.core import StoreBase
from protocol.messages import MediaRef, ProblemEvent


@dataclass(frozen=True)
class EventRecord:
    device_id: str
    event_id: str
    seq: int
    case_id: str | None
    received_at: datetime
    event: ProblemEvent
    manifest: bytes
    signature: bytes
    media: list[MediaRef]


class EventReads(StoreBase):
    """The store's reads of stored events (a part of hub.storage.store.Store)."""

    def get_event(self, event_id: str, device_id: str | None = None) -> EventRecord | None:
        e = schema.events
        query = select(e).where(e.c.event_id == event_id, e.c.source == "edge")
        if device_id is not None:
            query = query.where(e.c.device_id == device_id)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(e.c.id).limit(1)).first()
            if row is None:
                return None
            mt = schema.media
            refs = conn.execute(select(mt).where(mt.c.event_pk == row.id).order_by(mt.c.id)).all()
        m = row._mapping
        return EventRecord(
            device_id=m["device_id"], event_id=m["event_id"], seq=m["seq"], case_id=m["case_id"],
            received_at=m["received_at"], event=ProblemEvent.model_validate(m["payload"]),
            manifest=bytes(m["manifest"]), signature=bytes(m["signature"]),
            media=[MediaRef(name=r.name, kind=r.kind, content_type=r.content_type, size=r.size, sha256=r.sha256)
                   for r in refs],
        )
