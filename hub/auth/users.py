"""People's accounts: a name, a role and a scrypt password hash; sign-in with lockout.

Machines keep API tokens (hub.auth.tokens). A user signs in with a password and gets a session
(hub.auth.sessions). `max_failures` wrong passwords in a row lock the account for `lockout_minutes`;
while locked, even the right password is refused (so guessing cannot go on), and the answer says until
when. Setting a new password unlocks; disabling an account ends its sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from hub.auth import passwords
from hub.auth.config import AccountPolicy
from hub.cases.lifecycle import Role
from hub.storage import db, schema
from hub.storage.store import Store

NAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"


class UserError(ValueError):
    """A user command that cannot be done; the message says why (unknown name, taken name, weak password)."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: Role


class Outcome(StrEnum):
    SIGNED_IN = "signed_in"
    BAD_CREDENTIALS = "bad_credentials"  # unknown name or wrong password: the answer does not say which
    LOCKED = "locked"
    DISABLED = "disabled"


@dataclass(frozen=True)
class SignInResult:
    outcome: Outcome
    user: User | None = None  # SIGNED_IN
    locked_until: datetime | None = None  # LOCKED


def add_user(store: Store, name: str, role: Role, password: str, policy: AccountPolicy) -> User:
    passwords.check_policy(password, name)
    password_hash = passwords.hash_password(password, n=policy.password_scrypt_n)
    u = schema.users
    now = db.utcnow()

    def tx(conn: db.Connection) -> int:
        result = conn.execute(u.insert().values(
            name=name, role=role.value, password_hash=password_hash, disabled=False, failed_attempts=0,
            created_at=now, updated_at=now).returning(u.c.id))
        return int(result.scalar_one())

    try:
        return User(store.write(tx), name, role)
    except IntegrityError:
        raise UserError(f"a user named {name!r} exists already") from None


def set_password(store: Store, name: str, password: str, policy: AccountPolicy) -> None:
    """New password; unlocks the account and ends its sessions (a stolen session dies with the old password)."""
    passwords.check_policy(password, name)
    password_hash = passwords.hash_password(password, n=policy.password_scrypt_n)
    _update_user(store, name, password_hash=password_hash, failed_attempts=0, locked_until=None)


def set_disabled(store: Store, name: str, disabled: bool) -> None:
    """Disable (ending its sessions) or enable an account."""
    _update_user(store, name, disabled=disabled)


def set_role(store: Store, name: str, role: Role) -> None:
    _update_user(store, name, role=role.value)


def _update_user(store: Store, name: str, **values: Any) -> None:
    u, s = schema.users, schema.sessions

    def tx(conn: db.Connection) -> bool:
        row = conn.execute(select(u.c.id).where(u.c.name == name)).first()
        if row is None:
            return False
        conn.execute(update(u).where(u.c.id == row.id).values(updated_at=db.utcnow(), **values))
        conn.execute(delete(s).where(s.c.user_id == row.id))
        return True

    if not store.write(tx):
        raise UserError(f"no user named {name!r}")


def list_users(store: Store) -> list[dict[str, Any]]:
    u = schema.users
    cols = (u.c.id, u.c.name, u.c.role, u.c.disabled, u.c.locked_until, u.c.created_at, u.c.last_login_at)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(*cols).order_by(u.c.name))]


def sign_in(store: Store, name: str, password: str, policy: AccountPolicy) -> SignInResult:
    """Check a password under the lockout rule; records the failure or the sign-in."""
    u = schema.users
    with store.engine.connect() as conn:
        row = conn.execute(select(u).where(u.c.name == name)).first()
    now = db.utcnow()
    if row is None:
        passwords.verify_nobody(password, policy.password_scrypt_n)
        return SignInResult(Outcome.BAD_CREDENTIALS)
    if row.disabled:
        return SignInResult(Outcome.DISABLED)
    if row.locked_until is not None and now < row.locked_until:
        return SignInResult(Outcome.LOCKED, locked_until=row.locked_until)
    ok = passwords.verify_password(password, row.password_hash)
    lock_ran_out = row.locked_until is not None

    def record(conn: db.Connection) -> SignInResult:
        if ok:
            values: dict[str, Any] = {"failed_attempts": 0, "locked_until": None, "last_login_at": now}
            if passwords.needs_rehash(row.password_hash, policy.password_scrypt_n):
                values["password_hash"] = passwords.hash_password(password, n=policy.password_scrypt_n)
            conn.execute(update(u).where(u.c.id == row.id).values(**values))
            return SignInResult(Outcome.SIGNED_IN, user=User(row.id, row.name, Role(row.role)))
        # Counted in SQL, so concurrent wrong guesses all count; a lock that ran out starts a new count.
        conn.execute(update(u).where(u.c.id == row.id).values(
            failed_attempts=1 if lock_ran_out else u.c.failed_attempts + 1, locked_until=None))
        count = conn.execute(select(u.c.failed_attempts).where(u.c.id == row.id)).scalar_one()
        if count >= policy.max_failures:
            until = now + timedelta(minutes=policy.lockout_minutes)
            conn.execute(update(u).where(u.c.id == row.id).values(locked_until=until, failed_attempts=0))
            return SignInResult(Outcome.LOCKED, locked_until=until)
        return SignInResult(Outcome.BAD_CREDENTIALS)

    return store.write(record)
