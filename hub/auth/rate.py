"""Sign-in attempts per client address in a sliding minute, counted in the database.

Lockout (hub.auth.users) protects each account; this limits one address trying many accounts. The
attempts are rows of `sign_in_attempts`, so every hub process (several uvicorn workers, or hubs behind a
balancer on one PostgreSQL) counts against the same limit. The count and the new row are one write
transaction: SQLite serialises writers; on PostgreSQL an advisory lock per address does the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from hub.storage import db, schema
from hub.storage.core import StoreBase

WINDOW = timedelta(seconds=60)


class AttemptLimiter:
    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute

    def check(self, store: StoreBase, client: str, now: datetime | None = None) -> float:
        """Count an attempt by `client`; 0 when allowed, else the seconds until the next one is."""
        now = db.utcnow() if now is None else now
        client = client[:128]
        a = schema.sign_in_attempts

        def tx(conn: db.Connection) -> float:
            db.advisory_lock(conn, f"sign-in:{client}")
            conn.execute(delete(a).where(a.c.at <= now - WINDOW))  # every address's old attempts, not just this one's
            count, oldest = conn.execute(select(func.count(), func.min(a.c.at)).where(a.c.client == client)).one()
            if count >= self.per_minute and oldest is not None:
                return max(0.001, (WINDOW - (now - oldest)).total_seconds())
            conn.execute(a.insert().values(client=client, at=now))
            return 0.0

        return store.write(tx)
