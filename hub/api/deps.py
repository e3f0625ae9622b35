"""Shared FastAPI dependencies: the store, the settings, and access control.

A caller is an API token (`Authorization: Bearer`, machines) or a signed-in person's session cookie
(hub.auth.sessions); with a session, a request that changes something must carry the session's CSRF
token in `X-CSRF-Token`, or it is refused (403).

Deny by default: an app-wide dependency refuses any route whose router did not declare an access policy
(`require(...)` or `public`), so a new route without one fails closed instead of open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub import errors
from hub.auth import sessions
from hub.auth.tokens import Principal, TokenExpired, resolve_token
from hub.cases.lifecycle import Role
from hub.errors import Refused
from hub.settings import HubSettings
from hub.storage.store import Store

bearer = HTTPBearer(auto_error=False, description="API token from `cityeye hub token create`")


def get_store(request: Request) -> Store:
    return request.state.store


def get_settings(request: Request) -> HubSettings:
    return request.state.settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[HubSettings, Depends(get_settings)]


_BACKGROUND_HEADER = "X-CityEye-Background"  # the page's own polling: not a sign of the person at work


def _unauthorized(code: errors.Code, detail: str, **params: Any) -> Refused:
    return Refused(code, detail, headers={"WWW-Authenticate": "Bearer"}, **params)


_ENDED = {
    sessions.Ended.UNKNOWN: (errors.SESSION_ENDED, "the session has ended (signed out, or the account changed): "
                             "sign in again"),
    sessions.Ended.EXPIRED: (errors.SESSION_EXPIRED, "the session reached its lifetime: sign in again"),
    sessions.Ended.IDLE: (errors.SESSION_IDLE, "the session ended after {minutes:g} minutes without use: sign in "
                          "again"),
}


def authenticate(
    request: Request, store: StoreDep, settings: SettingsDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if creds is not None:
        try:
            principal = resolve_token(store, creds.credentials)
        except TokenExpired as exc:
            raise _unauthorized(errors.TOKEN_EXPIRED, str(exc)) from exc
        if principal is None:
            raise _unauthorized(errors.TOKEN_UNKNOWN, "unknown or revoked API token")
        return principal
    cookie = request.cookies.get(sessions.COOKIE)
    if cookie is None:
        raise _unauthorized(errors.TOKEN_MISSING,
                            "missing API token: send 'Authorization: Bearer <token>', or sign in (POST /session)")
    policy = settings.accounts
    # Live updates and the page's background refreshes keep running while nobody is at the desk: they
    # are checked against the idle limit but do not count as use.
    busy = request.headers.get(_BACKGROUND_HEADER) != "1" and not request.url.path.startswith("/stream/")
    try:
        session = sessions.check_session(store, cookie, policy.session_idle, touch=busy)
    except sessions.SessionEnded as exc:
        code, text = _ENDED[exc.why]
        minutes = policy.session_idle_minutes
        params = {"minutes": minutes} if code is errors.SESSION_IDLE else {}
        raise _unauthorized(code, text.format(minutes=minutes), **params) from None
    if request.method in sessions.UNSAFE_METHODS and not sessions.csrf_ok(
            session, request.headers.get(sessions.CSRF_HEADER)):
        raise Refused(errors.CSRF, f"CSRF token missing or wrong: a signed-in browser must send the "
                      f"{sessions.CSRF_HEADER} header it got from POST /session or GET /me")
    return Principal(None, session.name, session.role, session_id=session.id, csrf_token=session.csrf_token)


def access_policy(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark `fn` as a dependency that decides who may call a route (what `deny_by_default` looks for)."""
    fn.access_policy = True  # type: ignore[attr-defined]  # a marker on the function, read by deny_by_default
    return fn


def require(*roles: Role) -> Callable[..., Principal]:
    """A router dependency: the caller's token must carry one of `roles` (admin always passes)."""
    allowed = frozenset(roles) | {Role.ADMIN}

    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise Refused(errors.ROLE_FORBIDDEN, f"role {principal.role.value!r} may not do this (allowed: {names})",
                          role=principal.role.value)
        return principal

    return access_policy(check)


@access_policy
def public() -> None:
    """A router dependency for endpoints anyone may call (health, liveness)."""


def _declares_policy(dependant: Any) -> bool:
    return any(getattr(d.call, "access_policy", False) or _declares_policy(d) for d in dependant.dependencies)


def deny_by_default(request: Request) -> None:
    """App-wide: refuse routes that declare no access policy."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not _declares_policy(dependant):
        raise Refused(errors.NO_ACCESS_POLICY, "this endpoint declares no access policy; refused")


ALL_ROLES = tuple(Role)
STAFF = (Role.REVIEWER, Role.DISPATCHER, Role.HANDLER)
READERS = (Role.READER, *STAFF)
CurrentUser = Annotated[Principal, Depends(authenticate)]
