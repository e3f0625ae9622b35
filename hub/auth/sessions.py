"""Browser sessions of signed-in users: a random cookie secret stored only as its SHA-256, with a CSRF token.

The cookie is HttpOnly (scripts cannot read it) and SameSite=Strict (other sites' pages don't send it).
Every request that changes something must also carry the session's CSRF token in `X-CSRF-Token`
(the page gets it from the sign-in answer and from /me): a form or script on another origin can
neither read it nor set that header. API tokens (Authorization: Bearer) need no CSRF token: browsers
never attach them by themselves.

A session ends at its absolute expiry (`session_hours` after sign-in) or after `session_idle_minutes`
without a request, whichever comes first; `last_seen_at` is written at most once a `TOUCH_EVERY` of the
idle limit (not on every request), so the idle end is exact to within that slice.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select, update

from hub.auth.users import User
from hub.cases.lifecycle import Role
from hub.storage import db, schema
from hub.storage.store import Store

COOKIE = "cityeye_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TOUCH_EVERY = 0.05  # of the idle limit: a 30 min limit writes last_seen_at at most every 90 s per session


class Ended(StrEnum):
    """Why a cookie no longer signs anyone in (the page words each differently)."""

    UNKNOWN = "session_ended"  # signed out, never existed, or the account changed or was disabled
    EXPIRED = "session_expired"  # the absolute lifetime is over
    IDLE = "session_idle"  # no request for longer than the idle limit


class SessionEnded(Exception):
    def __init__(self, why: Ended) -> None:
        super().__init__(why.value)
        self.why = why


@dataclass(frozen=True)
class Session:
    id: int
    user_id: int
    name: str
    role: Role
    csrf_token: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewSession:
    secret: str  # the cookie's value; stored only as its SHA-256
    csrf_token: str
    expires_at: datetime


def create_session(store: Store, user: User, hours: float) -> NewSession:
    new = NewSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), db.utcnow() + timedelta(hours=hours))
    s = schema.sessions

    def tx(conn: db.Connection) -> None:
        conn.execute(delete(s).where(s.c.expires_at < db.utcnow()))  # sweep the expired ones while here
        conn.execute(s.insert().values(token_sha256=_digest(new.secret), user_id=user.id, csrf_token=new.csrf_token,
                                       created_at=db.utcnow(), expires_at=new.expires_at))

    store.write(tx)
    return new


def check_session(store: Store, secret: str, idle: timedelta | None = None, *, touch: bool = True) -> Session:
    """The live session for a cookie secret; SessionEnded says why there is none. `idle`: the idle limit
    (None: none); `touch`: this request is the person's own (it restarts the idle clock)."""
    if not secret or len(secret) > 256:
        raise SessionEnded(Ended.UNKNOWN)
    s, u = schema.sessions, schema.users
    with store.engine.connect() as conn:
        row = conn.execute(
            select(s.c.id, s.c.user_id, s.c.csrf_token, s.c.created_at, s.c.expires_at, s.c.last_seen_at, u.c.name,
                   u.c.role, u.c.disabled)
            .join(u, u.c.id == s.c.user_id).where(s.c.token_sha256 == _digest(secret))).first()
    now = db.utcnow()
    if row is None or row.disabled:
        raise SessionEnded(Ended.UNKNOWN)
    if row.expires_at <= now:
        raise SessionEnded(Ended.EXPIRED)
    seen = row.last_seen_at or row.created_at
    if idle is not None:
        if now - seen >= idle:  # the row stays (swept at expiry), so every later request says why too
            raise SessionEnded(Ended.IDLE)
        if touch and now - seen >= idle * TOUCH_EVERY:
            store.write(lambda conn: conn.execute(update(s).where(s.c.id == row.id).values(last_seen_at=now)))
    return Session(row.id, row.user_id, row.name, Role(row.role), row.csrf_token)


def resolve_session(store: Store, secret: str, idle: timedelta | None = None) -> Session | None:
    """check_session, or None when the session has ended (for any reason)."""
    try:
        return check_session(store, secret, idle)
    except SessionEnded:
        return None


def csrf_ok(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf_token.encode(), (sent or "").encode())


def end_session(store: Store, session_id: int) -> None:
    s = schema.sessions
    store.write(lambda conn: conn.execute(delete(s).where(s.c.id == session_id)))


def end_user_sessions(store: Store, user_id: int) -> None:
    s = schema.sessions
    store.write(lambda conn: conn.execute(delete(s).where(s.c.user_id == user_id)))


