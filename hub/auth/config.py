"""Account policy: lockout, sessions, sign-in rate and password cost (HubSettings.accounts)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field


class AccountPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_failures: int = Field(default=5, ge=1, le=100,
                              description="wrong passwords in a row that lock an account")
    lockout_minutes: float = Field(default=15.0, gt=0, description="how long a locked account stays locked "
                                   "(`cityeye hub user passwd` unlocks at once)")
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30,
                                 description="a sign-in lasts at most this long, however busy (one working "
                                 "shift by default)")
    session_idle_minutes: float = Field(default=30.0, gt=0, le=24 * 60,
                                        description="a sign-in ends after this long without a request from the "
                                        "page (the page then asks for the password and returns where it was)")
    sign_in_per_minute: int = Field(default=10, ge=1, le=10_000,
                                    description="sign-in attempts one client address may make per minute (behind "
                                    "a reverse proxy on the same host, uvicorn takes the address from "
                                    "X-Forwarded-For; otherwise every user shares the proxy's)")
    password_scrypt_n: int = Field(default=2**17, ge=2**10, le=2**20,
                                   description="scrypt cost N for new password hashes (a power of two; OWASP's "
                                   "minimum 2^17 takes 128 MiB and a fraction of a second per check)")
    secure_cookies: bool | None = Field(default=None, description="mark session cookies Secure; None: when the "
                                        "request came over HTTPS (set true behind a TLS proxy)")

    @property
    def session_idle(self) -> timedelta:
        return timedelta(minutes=self.session_idle_minutes)
