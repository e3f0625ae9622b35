"""API tokens: random bearer secrets stored only as their SHA-256, each with one role."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update

from hub.cases.lifecycle import Role
from hub.storage import db, schema
from hub.storage.store import Store

TOKEN_PREFIX = "cey_"


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


def create_token(store: Store, name: str, role: Role) -> tuple[int, str]:
    """A new token for `name`; the secret is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)

    def tx(conn: db.Connection) -> int:
        result = conn.execute(
            schema.api_tokens.insert().values(name=name, role=role.value, token_sha256=_digest(token),
                                          created_at=db.utcnow(), revoked=False).returning(schema.api_tokens.c.id)
        )
        return int(result.scalar_one())

    return store.write(tx), token


def resolve_token(store: Store, token: str) -> Principal | None:
    if not token or len(token) > 256:
        return None
    t = schema.api_tokens
    with store.engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.token_sha256 == _digest(token), t.c.revoked.is_(False))).first()
    return Principal(row.id, row.name, Role(row.role)) if row else None


def list_tokens(store: Store) -> list[dict[str, object]]:
    t = schema.api_tokens
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.c.id, t.c.name, t.c.role, t.c.created_at).where(t.c.revoked.is_(False))
                            .order_by(t.c.id))
        return [dict(r._mapping) for r in rows]


def revoke_token(store: Store, token_id: int) -> bool:
    t = schema.api_tokens
    return bool(store.write(lambda conn: conn.execute(update(t).where(t.c.id == token_id).values(revoked=True))
                            .rowcount))
