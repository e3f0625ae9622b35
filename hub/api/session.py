"""People sign in with a password: POST /session sets the session cookie, DELETE /session ends it.

The answer to a refused sign-in says why in `detail.code` (bad_credentials, locked with `locked_until`,
disabled, rate_limited with `retry_after_s`) so the page can say it in the reviewer's language. A wrong
name and a wrong password get the same answer.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from hub import errors
from hub.api.deps import ALL_ROLES, CurrentUser, SettingsDep, StoreDep, public, require
from hub.api.schemas import SessionIn, SessionOut, SignInErrorOut
from hub.auth import sessions, users
from hub.auth.rate import AttemptLimiter
from hub.errors import Refused

router = APIRouter(prefix="/session", tags=["session"])

REFUSALS: dict[int | str, dict[str, Any]] = {
    code: {"model": SignInErrorOut, "description": text}
    for code, text in ((401, "wrong user name or password"), (403, "account disabled"),
                       (423, "account locked after too many wrong passwords"), (429, "too many attempts"))
}


def _refuse(code: errors.Code, message: str, **extra: Any) -> Refused:
    """`detail` keeps its object shape ({code, message, ...}) for clients written before codes were top-level."""
    headers = {"Retry-After": str(extra["retry_after_s"])} if "retry_after_s" in extra else None
    return Refused(code, {"code": code.name, "message": message, **extra}, headers=headers, **extra)


@router.post("", response_model=SessionOut, dependencies=[Depends(public)], responses=REFUSALS,
             summary="Sign in with user name and password; sets the session cookie")
def sign_in(body: SessionIn, request: Request, response: Response, store: StoreDep,
            settings: SettingsDep) -> dict[str, Any]:
    policy = settings.accounts
    limiter: AttemptLimiter = request.state.sign_in_limiter
    wait = limiter.check(store, request.client.host if request.client else "?")
    if wait:
        raise _refuse(errors.RATE_LIMITED, "too many sign-in attempts from this address; wait and try again",
                      retry_after_s=math.ceil(wait))
    result = users.sign_in(store, body.username, body.password, policy)
    if result.outcome is users.Outcome.LOCKED and result.locked_until is not None:
        until = result.locked_until.isoformat()
        raise _refuse(errors.LOCKED, f"the account is locked after {policy.max_failures} wrong passwords in a row "
                      f"until {until}; an administrator can unlock it with a new password", locked_until=until)
    if result.outcome is users.Outcome.DISABLED:
        raise _refuse(errors.DISABLED, "the account is disabled")
    if result.outcome is not users.Outcome.SIGNED_IN or result.user is None:
        raise _refuse(errors.BAD_CREDENTIALS, "wrong user name or password", max_failures=policy.max_failures)
    new = sessions.create_session(store, result.user, policy.session_hours)
    secure = policy.secure_cookies if policy.secure_cookies is not None else request.url.scheme == "https"
    response.set_cookie(sessions.COOKIE, new.secret, max_age=round(policy.session_hours * 3600), path="/",
                        httponly=True, samesite="strict", secure=secure)
    return {"name": result.user.name, "role": result.user.role, "csrf_token": new.csrf_token,
            "expires_at": new.expires_at}


@router.delete("", status_code=204, dependencies=[Depends(require(*ALL_ROLES))],
               summary="Sign out: ends this session on the hub and clears its cookie")
def sign_out(user: CurrentUser, store: StoreDep, response: Response) -> None:
    if user.session_id is not None:
        sessions.end_session(store, user.session_id)
    response.delete_cookie(sessions.COOKIE, path="/", httponly=True, samesite="strict")
