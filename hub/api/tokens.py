"""API tokens (admin only); the secret is shown once at creation."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from hub import errors
from hub.api.deps import StoreDep, require
from hub.api.schemas import TokenIn, TokenOut
from hub.auth import tokens as auth
from hub.errors import Refused

RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
router = APIRouter(prefix="/tokens", tags=["tokens"], dependencies=[Depends(require())])


@router.post("", response_model=TokenOut, status_code=201, summary="Create a token (shown once)")
def create(body: TokenIn, store: StoreDep) -> dict[str, Any]:
    lifetime = timedelta(days=body.expires_days) if body.expires_days else None
    token_id, token = auth.create_token(store, body.name, body.role, lifetime)
    return {"id": token_id, "name": body.name, "role": body.role, "token": token,
            "expires_at": auth.list_tokens(store, token_id)[0]["expires_at"]}


@router.get("", response_model=list[TokenOut], summary="Active tokens (no secrets)")
def list_all(store: StoreDep) -> list[dict[str, Any]]:
    return auth.list_tokens(store)


@router.delete("/{token_id}", status_code=204, summary="Revoke a token")
def revoke(token_id: RowId, store: StoreDep) -> None:
    if not auth.revoke_token(store, token_id):
        raise Refused(errors.NOT_FOUND, f"no token {token_id}")
