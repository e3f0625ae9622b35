"""API tokens: random bearer secrets stored only as their SHA-256, each with one role, an optional expiry
and the time it was last used (kept to the minute, so a busy token does not write on every request)."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from hub.cases.lifecycle import Role
from hub.storage import db, schema
from hub.storage.store import Store

log = logging.getLogger(__name__)
TOKEN_PREFIX = "cey_"
LAST_USED_EVERY = timedelta(minutes=1)


class TokenExpired(Exception):
    """A known, unrevoked token past its expiry (the API answers 401 saying so)."""

    def __init__(self, expires_at: datetime) -> None:
        super().__init__(f"API token expired at {expires_at.isoformat()}: ask an administrator for a new one")
        self.expires_at = expires_at


_LIFETIME = re.compile(r"^(\d{1,5})([hdw])$")


def parse_lifetime(text: str) -> timedelta:
    """`90d`, `12h`, `2w` as a timedelta; ValueError naming the value otherwise."""
    match = _LIFETIME.match(text.strip())
    if not match or int(match[1]) == 0:
        raise ValueError(f"--expires {text!r}: expected a positive number and h, d or w, e.g. 90d")
    unit = {"h": "hours", "d": "days", "w": "weeks"}[match[2]]
    return timedelta(**{unit: int(match[1])})


@dataclass(frozen=True)
class Principal:
    """Who calls: an API token (token_id) or a signed-in user's session (session_id, with its CSRF token)."""

    token_id: int | None
    name: str
    role: Role
    session_id: int | None = None
    csrf_token: str | None = None

    @property
    def actor(self) -> str:
        return f"{self.role.value}:{self.name}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: Store, name: str, role: Role, expires_in: timedelta | None = None) -> tuple[int, str]:
    """A new token for `name`, valid for `expires_in` (None: until revoked); the secret is returned once
    and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = db.utcnow()

    def tx(conn: db.Connection) -> int:
        result = conn.execute(
            schema.api_tokens.insert().values(
                name=name, role=role.value, token_sha256=_digest(token), created_at=now, revoked=False,
                expires_at=now + expires_in if expires_in else None).returning(schema.api_tokens.c.id)
        )
        return int(result.scalar_one())

    return store.write(tx), token


def resolve_token(store: Store, token: str) -> Principal | None:
    """Who holds `token`; None: unknown or revoked. Raises TokenExpired past its expiry."""
    if not token or len(token) > 256:
        return None
    t = schema.api_tokens
    with store.engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.token_sha256 == _digest(token), t.c.revoked.is_(False))).first()
    if row is None:
        return None
    now = db.utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        raise TokenExpired(row.expires_at)
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        _note_use(store, row.id, now)
    return Principal(row.id, row.name, Role(row.role))


_noting: set[int] = set()  # token ids whose last use is being written
_noting_lock = threading.Lock()


def _note_use(store: Store, token_id: int, now: datetime) -> None:
    """Record the token's use in the background: a request never waits for the write lock (an ingest
    burst may hold it), and the last-used time is advice for the administrator, not a control."""
    with _noting_lock:
        if token_id in _noting:
            return
        _noting.add(token_id)
    t = schema.api_tokens

    def write() -> None:
        try:
            store.write(lambda conn: conn.execute(update(t).where(t.c.id == token_id).values(last_used_at=now)))
        except Exception:  # the store closed meanwhile: the next use records it
            log.debug("last use of token %s not recorded", token_id, exc_info=True)
        finally:
            with _noting_lock:
                _noting.discard(token_id)

    threading.Thread(target=write, name="token-last-used", daemon=True).start()


def list_tokens(store: Store, token_id: int | None = None) -> list[dict[str, object]]:
    """Unrevoked tokens (expired ones included: they show when they expired), or just `token_id`."""
    t = schema.api_tokens
    query = (select(t.c.id, t.c.name, t.c.role, t.c.created_at, t.c.expires_at, t.c.last_used_at)
             .where(t.c.revoked.is_(False)).order_by(t.c.id))
    with store.engine.connect() as conn:
        rows = conn.execute(query.where(t.c.id == token_id) if token_id is not None else query)
        return [dict(r._mapping) for r in rows]


def revoke_token(store: Store, token_id: int) -> bool:
    t = schema.api_tokens
    return bool(store.write(lambda conn: conn.execute(update(t).where(t.c.id == token_id).values(revoked=True))
                            .rowcount))
