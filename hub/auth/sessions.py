"""Browser sessions of signed-in users: a random cookie secret stored only as its SHA-256, with a CSRF token.

The cookie is HttpOnly (scripts cannot read it) and SameSite=Strict (other sites' pages don't send it).
Every request that changes something must also carry the session's CSRF token in `X-CSRF-Token`
(the page gets it from the sign-in answer and from /me): a form or script on another origin can
neither read it nor set that header. API tokens (Authorization: Bearer) need no CSRF token: browsers
never attach them by themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from hub.auth.users import User
from hub.cases.lifecycle import Role
from hub.storage import db, schema
from hub.storage.store import Store

COOKIE = "cityeye_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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


def resolve_session(store: Store, secret: str) -> Session | None:
    """The live session for a cookie secret; None when unknown, expired, or its user is disabled."""
    if not secret or len(secret) > 256:
        return None
    s, u = schema.sessions, schema.users
    with store.engine.connect() as conn:
        row = conn.execute(
            select(s.c.id, s.c.user_id, s.c.csrf_token, s.c.expires_at, u.c.name, u.c.role, u.c.disabled)
            .join(u, u.c.id == s.c.user_id).where(s.c.token_sha256 == _digest(secret))).first()
    if row is None or row.disabled or row.expires_at <= db.utcnow():
        return None
    return Session(row.id, row.user_id, row.name, Role(row.role), row.csrf_token)


def csrf_ok(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf_token.encode(), (sent or "").encode())


def end_session(store: Store, session_id: int) -> None:
    s = schema.sessions
    store.write(lambda conn: conn.execute(delete(s).where(s.c.id == session_id)))


def end_user_sessions(store: Store, user_id: int) -> None:
    s = schema.sessions
    store.write(lambda conn: conn.execute(delete(s).where(s.c.user_id == user_id)))


