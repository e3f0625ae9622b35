"""Which stored evidence file is what: its content type, a case's latest image."""

from __future__ import annotations

from sqlalchemy import and_, or_, select

from hub.storage import schema
from hub.storage.core import StoreBase
from protocol import plates


def content_type(store: StoreBase, sha256: str) -> str:
    """The content type the file was stored with (its first media row); octet-stream when unknown."""
    with store.engine.connect() as conn:
        ct = conn.execute(select(schema.media.c.content_type).where(schema.media.c.sha256 == sha256).limit(1)).scalar()
    return ct or "application/octet-stream"


def latest_media(store: StoreBase, case_id: str, kind: str) -> str | None:
    """The SHA-256 of the case's latest media of `kind` (snapshot, annotated, crop), by observation time."""
    e, m = schema.events, schema.media
    with store.engine.connect() as conn:
        return conn.execute(
            select(m.c.sha256).join(e, e.c.id == m.c.event_pk).where(e.c.case_id == case_id, m.c.kind == kind)
            .order_by(e.c.observed_at.desc(), e.c.id.desc()).limit(1)
        ).scalar()


# Media that show a licence plate up close: only the roles that act on plates get them (hub.cases.plates).
PLATE_MEDIA_KINDS = ("plate",)


def shows_plate(store: StoreBase, sha256: str) -> bool:
    """Whether the file is stored as a plate close-up (the plate crop, or the close-up still) for any event."""
    m = schema.media.c
    close_up = or_(m.kind.in_(PLATE_MEDIA_KINDS), and_(m.kind == "still", m.name == plates.CLOSE_UP_STILL))
    with store.engine.connect() as conn:
        return conn.execute(select(m.id).where(m.sha256 == sha256, close_up).limit(1)).first() is not None
