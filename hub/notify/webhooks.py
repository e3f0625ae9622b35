"""Webhooks: case changes POSTed to subscribers, signed, retried with exponential backoff.

The worker fans new rows of the change outbox out into per-subscription deliveries (idempotent on
(webhook, change)), then sends due deliveries. Each body is signed with HMAC-SHA256 of the
subscription's secret: `X-CityEye-Signature: sha256=<hex>`. A failure is retried after
backoff * 2^attempts (capped at an hour) until max_attempts, then marked failed. Several hub
processes may run the worker: PostgreSQL claims rows with SKIP LOCKED and a lease.

The body is the case event of `hub.cases.events` (the same JSON as the SSE stream's). Deliveries connect only
where the egress policy allows (`hub.notify.egress`: public addresses plus `webhook_allow_cidrs`), checked on the
addresses actually connected to; a refused target is a failed attempt whose error says why. Redirects are
not followed (a 3xx is a failed attempt), so a receiver can't bounce the hub to an unchecked host.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from hub.cases import events as case_events
from hub.notify.egress import EgressPolicy, Network, TargetRefused, guarded_client
from hub.storage import db, schema
from hub.storage.store import Store

log = logging.getLogger(__name__)
LEASE_S = 60.0
MAX_BACKOFF_S = 3600.0


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int, base_s: float) -> float:
    return min(MAX_BACKOFF_S, base_s * 2 ** max(0, attempts - 1))


class WebhookWorker:
    """Built from (store, options, stop_event); `run()` polls every `poll_s` until stopped."""

    def __init__(self, store: Store, stop_event: threading.Event, *, max_attempts: int = 8,
                 backoff_s: float = 2.0, poll_s: float = 1.0, timeout_s: float = 5.0,
                 allow_cidrs: Iterable[Network | str] = ()) -> None:
        self.store = store
        self.stop_event = stop_event
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.poll_s = poll_s
        self.client = guarded_client(EgressPolicy.of(allow_cidrs), timeout_s)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.tick()
            except Exception:  # keep delivering after a database hiccup; the next tick retries
                log.exception("webhook worker tick failed")
            self.stop_event.wait(self.poll_s)
        self.client.close()

    def tick(self, now: datetime | None = None) -> int:
        """Fan out new changes, then send what is due; returns the number of deliveries attempted."""
        self.store.write(self._fan_out)
        due = self.store.write(lambda conn: self._claim(conn, now or db.utcnow()))
        for delivery in due:
            self._send(delivery)
        return len(due)

    def _fan_out(self, conn: Connection) -> None:
        db.advisory_lock(conn, "webhook-fanout")
        kv, ch, wh = schema.kv, schema.case_changes, schema.webhooks
        cursor = conn.execute(select(kv.c.value).where(kv.c.key == "webhook_cursor")).scalar()
        if cursor is None:
            cursor = 0
            conn.execute(kv.insert().values(key="webhook_cursor", value=0))
        hooks = conn.execute(select(wh).where(wh.c.active.is_(True))).all()
        changes = conn.execute(select(ch).where(ch.c.id > cursor).order_by(ch.c.id).limit(500)).all()
        now = db.utcnow()
        rows = [{"webhook_id": h.id, "change_id": c.id, "status": "pending", "attempts": 0, "next_attempt_at": now}
                for c in changes for h in hooks if c.kind in h.kinds and c.at >= h.created_at]
        if rows:
            conn.execute(schema.webhook_deliveries.insert(), rows)
        if changes:
            conn.execute(update(kv).where(kv.c.key == "webhook_cursor").values(value=changes[-1].id))

    def _claim(self, conn: Connection, now: datetime) -> list[dict[str, Any]]:
        d, wh, ch = schema.webhook_deliveries, schema.webhooks, schema.case_changes
        query = (select(d.c.id, d.c.attempts, wh.c.url, wh.c.secret, ch.c.id.label("change_id"), ch.c.kind,
                        ch.c.case_id, ch.c.status, ch.c.at, ch.c.data)
                 .join(wh, wh.c.id == d.c.webhook_id).join(ch, ch.c.id == d.c.change_id)
                 .where(d.c.status == "pending", d.c.next_attempt_at <= now).order_by(d.c.id).limit(50))
        if db.is_postgres(conn):
            query = query.with_for_update(skip_locked=True, of=d)
        due = [dict(r._mapping) for r in conn.execute(query)]
        if due:  # lease: another worker won't pick these up while we send
            conn.execute(update(d).where(d.c.id.in_([x["id"] for x in due]))
                         .values(next_attempt_at=now + timedelta(seconds=LEASE_S)))
        return due

    def _send(self, delivery: dict[str, Any]) -> None:
        # the claimed row's "id" is the delivery's; the event carries the change's
        body = case_events.to_json({**delivery, "id": delivery["change_id"]}).encode()
        headers = {"Content-Type": "application/json", "X-CityEye-Event": delivery["kind"],
                   "X-CityEye-Delivery": str(delivery["id"]), "X-CityEye-Signature": sign(delivery["secret"], body)}
        error = None
        try:
            resp = self.client.post(delivery["url"], content=body, headers=headers)
            if 300 <= resp.status_code < 400:
                error = f"HTTP {resp.status_code}: redirects are not followed; register the final URL"
            elif resp.status_code >= 400:
                error = f"HTTP {resp.status_code}"
        except TargetRefused as exc:
            error = f"refused: {exc}"[:500]
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        self.store.write(lambda conn: self._record(conn, delivery, error))

    def _record(self, conn: Connection, delivery: dict[str, Any], error: str | None) -> None:
        d = schema.webhook_deliveries
        attempts = delivery["attempts"] + 1
        now = db.utcnow()
        if error is None:
            values: dict[str, Any] = {"status": "delivered", "attempts": attempts, "delivered_at": now,
                                      "last_error": None}
        elif attempts >= self.max_attempts:
            values = {"status": "failed", "attempts": attempts, "last_error": error}
        else:
            values = {"attempts": attempts, "last_error": error,
                      "next_attempt_at": now + timedelta(seconds=backoff(attempts, self.backoff_s))}
        conn.execute(update(d).where(d.c.id == delivery["id"]).values(**values))


def start(store: Store, stop_event: threading.Event, **kwargs: Any) -> threading.Thread:
    worker = WebhookWorker(store, stop_event, **kwargs)
    thread = threading.Thread(target=worker.run, name="webhooks", daemon=True)
    thread.start()
    return thread
