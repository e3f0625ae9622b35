"""Webhook subscriptions and their delivery log, as the admin API manages them (delivery: hub.notify.webhooks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from hub.storage import db, schema
from hub.storage.core import StoreBase


def subscribe(store: StoreBase, url: str, secret: str, kinds: Sequence[str]) -> dict[str, Any]:
    """A new active subscription (the URL already checked against the egress policy); the row without its secret."""
    now = db.utcnow()

    def tx(conn: Connection) -> int:
        return conn.execute(schema.webhooks.insert().values(url=url, secret=secret, kinds=kinds, active=True,
                                                        created_at=now)
                            .returning(schema.webhooks.c.id)).scalar_one()

    return {"id": store.write(tx), "url": url, "kinds": kinds, "active": True, "created_at": now}


def list_all(store: StoreBase) -> list[dict[str, Any]]:
    w = schema.webhooks
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(w).order_by(w.c.id))]


def deactivate(store: StoreBase, webhook_id: int) -> bool:
    """False: no such subscription."""
    w = schema.webhooks
    return bool(store.write(lambda conn: conn.execute(update(w).where(w.c.id == webhook_id).values(active=False))
                            .rowcount))


def deliveries(store: StoreBase, webhook_id: int) -> list[dict[str, Any]]:
    """The subscription's latest 200 deliveries, newest first."""
    d = schema.webhook_deliveries
    with store.engine.connect() as conn:
        rows = conn.execute(select(d).where(d.c.webhook_id == webhook_id).order_by(d.c.id.desc()).limit(200))
        return [dict(r._mapping) for r in rows]
