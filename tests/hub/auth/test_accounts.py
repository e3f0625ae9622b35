"""People's accounts: scrypt hashes, lockout after wrong passwords, sessions that end, the sign-in limit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

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


def test_the_sign_in_limit_counts_attempts_per_address_in_a_sliding_minute(store: Store) -> None:
    limiter = AttemptLimiter(per_minute=3)
    t0 = db.utcnow()
    at = [t0 + timedelta(seconds=s) for s in (0.0, 1.0, 2.0, 3.0, 60.5)]
    assert [limiter.check(store, "10.0.0.1", now=t) for t in at[:3]] == [0.0, 0.0, 0.0]
    assert limiter.check(store, "10.0.0.1", now=at[3]) == pytest.approx(57.0)
    assert limiter.check(store, "10.0.0.2", now=at[3]) == 0.0  # another address has its own count
    assert limiter.check(store, "10.0.0.1", now=at[4]) == 0.0  # the first attempt left the window
    with store.engine.connect() as conn:  # old attempts are swept, not kept
        assert conn.execute(select(func.count()).select_from(schema.sign_in_attempts)).scalar_one() == 4


def test_sessions_end_after_the_idle_limit_and_background_requests_do_not_extend_them(store: Store) -> None:
    user = users.add_user(store, "zhou.li", Role.REVIEWER, PW, FAST)
    new = sessions.create_session(store, user, hours=12)
    idle = timedelta(minutes=30)
    assert sessions.check_session(store, new.secret, idle).name == "zhou.li"
    # 20 minutes of polling alone (the page's live updates) ...
    back = db.utcnow() - timedelta(minutes=20)
    store.write(lambda conn: conn.execute(update(schema.sessions).values(created_at=back, last_seen_at=back)))
    assert sessions.check_session(store, new.secret, idle, touch=False).name == "zhou.li"
    # ... do not restart the idle clock: 20 more minutes and the session has ended, and stays ended.
    back = db.utcnow() - timedelta(minutes=40)
    store.write(lambda conn: conn.execute(update(schema.sessions).values(last_seen_at=back)))
    with pytest.raises(sessions.SessionEnded) as ended:
        sessions.check_session(store, new.secret, idle)
    assert ended.value.why is sessions.Ended.IDLE
    with pytest.raises(sessions.SessionEnded) as again:
        sessions.check_session(store, new.secret, idle)
    assert again.value.why is sessions.Ended.IDLE
    # A request by the person restarts it.
    fresh = sessions.create_session(store, user, hours=12)
    back = db.utcnow() - timedelta(minutes=25)
    store.write(lambda conn: conn.execute(update(schema.sessions).values(created_at=back)))
    sessions.check_session(store, fresh.secret, idle)
    with store.engine.connect() as conn:
        seen = conn.execute(select(schema.sessions.c.last_seen_at).order_by(schema.sessions.c.id.desc())).first()[0]
    assert db.utcnow() - seen < timedelta(minutes=1)
    # The absolute lifetime holds however busy the session is.
    store.write(lambda conn: conn.execute(update(schema.sessions).values(expires_at=db.utcnow())))
    with pytest.raises(sessions.SessionEnded) as expired:
        sessions.check_session(store, fresh.secret, idle)
    assert expired.value.why is sessions.Ended.EXPIRED


def test_the_sign_in_limit_holds_across_hub_instances_on_one_database(db_url: str | None, tmp_path: Any) -> None:
    """Two hub apps, each with its own engine and store, as two processes would have: attempts on either
    count against one limit."""
    from fastapi.testclient import TestClient

    from hub.app import create_app, open_store
    from hub.settings import HubSettings

    settings = HubSettings(db_url=db_url, data_dir=tmp_path / "hub", zmq_bind=None,
                           accounts=AccountPolicy(password_scrypt_n=2**10, sign_in_per_minute=4))
    stores = [open_store(settings), open_store(settings)]
    try:
        users.add_user(stores[0], "wu.fang", Role.REVIEWER, PW, FAST)
        with TestClient(create_app(settings, store=stores[0], background=False)) as a, \
                TestClient(create_app(settings, store=stores[1], background=False)) as b:
            wrong = {"username": "nobody", "password": "not the password"}
            answers = [c.post("/session", json=wrong) for c in (a, b, a, b)]
            assert [r.status_code for r in answers] == [401] * 4
            for c in (a, b):  # the fifth attempt, on either instance, is over the one limit
                refused = c.post("/session", json={"username": "wu.fang", "password": PW})
                assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
                assert 0 < int(refused.headers["Retry-After"]) <= 60
    finally:
        for s in stores:
            s.close()


def test_concurrent_sign_ins_on_two_served_hubs_get_exactly_the_limit(db_url: str | None, tmp_path: Any) -> None:
    """Attempts racing on two hubs served over HTTP (one database) are counted atomically: no more than
    the limit get through, however they interleave."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from hub.app import create_app, open_store
    from hub.settings import HubSettings
    from tests.hub.served import serve_app

    limit, tries = 6, 16
    settings = HubSettings(db_url=db_url, data_dir=tmp_path / "hub", zmq_bind=None,
                           accounts=AccountPolicy(password_scrypt_n=2**10, sign_in_per_minute=limit))
    stores = [open_store(settings), open_store(settings)]
    try:
        with serve_app(create_app(settings, store=stores[0], background=False)) as a, \
                serve_app(create_app(settings, store=stores[1], background=False)) as b:
            wrong = {"username": "nobody", "password": "not the password"}
            with ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(lambda i: httpx.post(f"{(a, b)[i % 2]}/session", json=wrong, timeout=30)
                                      .status_code, range(tries)))
        assert sorted(codes) == [401] * limit + [429] * (tries - limit), codes
    finally:
        for s in stores:
            s.close()
