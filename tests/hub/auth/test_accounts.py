"""People's accounts: scrypt hashes, lockout after wrong passwords, sessions that end, the sign-in limit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from hub.auth import passwords, sessions, users
from hub.auth.config import AccountPolicy
from hub.auth.rate import AttemptLimiter
from hub.cases.lifecycle import Role
from hub.storage import db, schema
from hub.storage.store import Store

FAST = AccountPolicy(password_scrypt_n=2**10)  # the KDF's cost is checked once below, at full strength
PW = "correct horse battery"


def test_hashes_are_scrypt_at_owasp_strength_and_verify() -> None:
    stored = passwords.hash_password(PW)
    assert stored.startswith("scrypt$131072$8$1$")  # N=2^17, r=8, p=1
    assert passwords.verify_password(PW, stored)
    assert not passwords.verify_password(PW + "!", stored)
    assert stored != passwords.hash_password(PW, n=2**10)  # salted
    assert not passwords.needs_rehash(stored)
    assert passwords.needs_rehash(passwords.hash_password(PW, n=2**10))  # weaker: re-hashed at next sign-in


@pytest.mark.parametrize("stored", ["", "plain", "scrypt$x$8$1$AAAA$BBBB", "bcrypt$1$2$3$4$5"])
def test_a_malformed_hash_never_verifies(stored: str) -> None:
    assert not passwords.verify_password(PW, stored)


def test_password_policy_names_the_problem() -> None:
    with pytest.raises(passwords.PasswordPolicyError, match="at least 10 characters"):
        passwords.check_policy("short")
    with pytest.raises(passwords.PasswordPolicyError, match="user name"):
        passwords.check_policy("li.wei.2026", "LI.WEI.2026")


def _locked_until(store: Store, name: str) -> Any:
    return next(u for u in users.list_users(store) if u["name"] == name)["locked_until"]


def test_five_wrong_passwords_lock_even_the_right_one_out_until_the_lock_ends(store: Store) -> None:
    users.add_user(store, "li.wei", Role.REVIEWER, PW, FAST)
    for _ in range(FAST.max_failures - 1):
        assert users.sign_in(store, "li.wei", "wrong password", FAST).outcome is users.Outcome.BAD_CREDENTIALS
    before = db.utcnow()
    locked = users.sign_in(store, "li.wei", "wrong password", FAST)
    assert locked.outcome is users.Outcome.LOCKED and locked.locked_until is not None
    expected = before + timedelta(minutes=FAST.lockout_minutes)
    assert abs((locked.locked_until - expected).total_seconds()) < 5
    assert users.sign_in(store, "li.wei", PW, FAST).outcome is users.Outcome.LOCKED  # no guessing while locked

    past = db.utcnow() - timedelta(seconds=1)
    store.write(lambda conn: conn.execute(update(schema.users).values(locked_until=past)))
    again = users.sign_in(store, "li.wei", "wrong password", FAST)
    assert again.outcome is users.Outcome.BAD_CREDENTIALS  # a new count after the lock ran out
    signed = users.sign_in(store, "li.wei", PW, FAST)
    assert signed.outcome is users.Outcome.SIGNED_IN and signed.user and signed.user.role is Role.REVIEWER
    for _ in range(FAST.max_failures - 1):  # the success reset the count: 4 more wrong ones don't lock
        assert users.sign_in(store, "li.wei", "wrong password", FAST).outcome is users.Outcome.BAD_CREDENTIALS


def test_a_new_password_unlocks_and_disabling_refuses(store: Store) -> None:
    users.add_user(store, "zhao.liu", Role.DISPATCHER, PW, FAST)
    for _ in range(FAST.max_failures):
        users.sign_in(store, "zhao.liu", "nope nope nope", FAST)
    assert _locked_until(store, "zhao.liu") is not None
    users.set_password(store, "zhao.liu", "a brand new password", FAST)
    assert _locked_until(store, "zhao.liu") is None
    assert users.sign_in(store, "zhao.liu", "a brand new password", FAST).outcome is users.Outcome.SIGNED_IN
    users.set_disabled(store, "zhao.liu", True)
    assert users.sign_in(store, "zhao.liu", "a brand new password", FAST).outcome is users.Outcome.DISABLED
    unknown = users.sign_in(store, "nobody", PW, FAST)
    assert unknown.outcome is users.Outcome.BAD_CREDENTIALS  # the same answer as a wrong password
    with pytest.raises(users.UserError, match="exists already"):
        users.add_user(store, "zhao.liu", Role.READER, PW, FAST)
    with pytest.raises(users.UserError, match="no user named 'ghost'"):
        users.set_password(store, "ghost", PW, FAST)


def test_a_sign_in_upgrades_a_weak_hash(store: Store) -> None:
    users.add_user(store, "old.hash", Role.READER, PW, FAST)
    stronger = AccountPolicy(password_scrypt_n=2**11)
    assert users.sign_in(store, "old.hash", PW, stronger).outcome is users.Outcome.SIGNED_IN
    with store.engine.connect() as conn:
        stored = conn.execute(schema.users.select().where(schema.users.c.name == "old.hash")).one().password_hash
    assert stored.startswith("scrypt$2048$")


def test_sessions_end_on_expiry_password_change_and_disabling(store: Store) -> None:
    user = users.add_user(store, "sun.qi", Role.REVIEWER, PW, FAST)
    new = sessions.create_session(store, user, hours=12)
    found = sessions.resolve_session(store, new.secret)
    assert found is not None and (found.name, found.role) == ("sun.qi", Role.REVIEWER)
    assert sessions.csrf_ok(found, new.csrf_token) and not sessions.csrf_ok(found, None)
    assert not sessions.csrf_ok(found, new.csrf_token[:-1] + "x")
    assert sessions.resolve_session(store, "not-a-session") is None
    with store.engine.connect() as conn:  # only the hash is stored
        row = conn.execute(schema.sessions.select()).one()
    assert new.secret not in (row.token_sha256, row.csrf_token)

    users.set_password(store, "sun.qi", "another good password", FAST)
    assert sessions.resolve_session(store, new.secret) is None
    again = sessions.create_session(store, user, hours=12)
    users.set_disabled(store, "sun.qi", True)
    assert sessions.resolve_session(store, again.secret) is None
    users.set_disabled(store, "sun.qi", False)
    late = sessions.create_session(store, user, hours=12)
    past = db.utcnow() - timedelta(seconds=1)
    store.write(lambda conn: conn.execute(update(schema.sessions).values(expires_at=past)))
    assert sessions.resolve_session(store, late.secret) is None


def test_the_sign_in_limit_counts_attempts_per_address_in_a_sliding_minute() -> None:
    limiter = AttemptLimiter(per_minute=3)
    assert [limiter.check("10.0.0.1", now=t) for t in (0.0, 1.0, 2.0)] == [0.0, 0.0, 0.0]
    assert limiter.check("10.0.0.1", now=3.0) == pytest.approx(57.0)
    assert limiter.check("10.0.0.2", now=3.0) == 0.0  # another address has its own count
    assert limiter.check("10.0.0.1", now=60.5) == 0.0  # the first attempt left the window
