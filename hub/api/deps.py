"""Shared FastAPI dependencies: the store, the settings, and access control.

Deny by default: an app-wide dependency refuses any route whose router did not declare an access
policy (`require(...)` or `public`), so a new route without one fails closed instead of open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.auth.tokens import Principal, resolve_token
from hub.cases.lifecycle import Role
from hub.settings import HubSettings
from hub.storage.store import Store

bearer = HTTPBearer(auto_error=False, description="API token from `cityeye hub token create`")


def get_store(request: Request) -> Store:
    return request.state.store


def get_settings(request: Request) -> HubSettings:
    return request.state.settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[HubSettings, Depends(get_settings)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def authenticate(
    store: StoreDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    if creds is None:
        raise _unauthorized("missing API token: send 'Authorization: Bearer <token>'")
    principal = resolve_token(store, creds.credentials)
    if principal is None:
        raise _unauthorized("unknown or revoked API token")
    return principal


def access_policy(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark `fn` as a dependency that decides who may call a route (what `deny_by_default` looks for)."""
    fn.access_policy = True  # type: ignore[attr-defined]
    return fn


def require(*roles: Role) -> Callable[..., Principal]:
    """A router dependency: the caller's token must carry one of `roles` (admin always passes)."""
    allowed = frozenset(roles) | {Role.ADMIN}

    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {principal.role.value!r} may not do this "
                                f"(allowed: {names})")
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
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this endpoint declares no access policy; refused")


ALL_ROLES = tuple(Role)
STAFF = (Role.REVIEWER, Role.DISPATCHER, Role.HANDLER)
READERS = (Role.READER, *STAFF)
CurrentUser = Annotated[Principal, Depends(authenticate)]
