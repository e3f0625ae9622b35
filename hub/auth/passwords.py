"""Password hashes: scrypt (RFC 7914, in Python's standard library), memory-hard so that guessing a
stolen hash on GPUs is slow. OWASP's minimum for scrypt is the default (N=2^17, r=8, p=1: 128 MiB per check);
`AccountPolicy.password_scrypt_n` sets N for new hashes.

A hash is stored as `scrypt$N$r$p$salt$digest` (base64), so the cost can be raised later: old hashes keep
verifying, and `needs_rehash` tells sign-in to store a fresh one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
DIGEST_BYTES = 32
MIN_LENGTH = 10
MAX_LENGTH = 1024  # scrypt takes any length; a cap keeps a huge body from costing CPU before the check


class PasswordPolicyError(ValueError):
    """A new password that the policy refuses; the message says why."""


def check_policy(password: str, user_name: str = "") -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"a password needs at least {MIN_LENGTH} characters (got {len(password)})")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"a password may have at most {MAX_LENGTH} characters")
    if user_name and password.casefold() == user_name.casefold():
        raise PasswordPolicyError("the password must not be the user name")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=DIGEST_BYTES,
                          maxmem=130 * n * r * p + 1024 * 1024)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(_scrypt(password, salt, n, r, p))}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored`; False for a wrong password or a malformed hash."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(password[:MAX_LENGTH], _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(stored: str, n: int = SCRYPT_N) -> bool:
    """True when `stored` is weaker than hashes made now with cost `n` (sign-in then stores a new one)."""
    parts = stored.split("$")
    try:
        return parts[0] != "scrypt" or int(parts[1]) < n or int(parts[2]) < SCRYPT_R
    except (IndexError, ValueError):
        return True


_dummy: dict[int, str] = {}


def verify_nobody(password: str, n: int = SCRYPT_N) -> bool:
    """Spend what verifying a real hash costs, for an unknown user name (so timing doesn't tell names)."""
    if n not in _dummy:
        _dummy[n] = hash_password(secrets.token_urlsafe(16), n=n)
    verify_password(password, _dummy[n])
    return False
