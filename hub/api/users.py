"""People's accounts, for administrators: who may sign in, with which role, locked or disabled.
Accounts are created and changed with `cityeye hub user add/passwd/disable/enable` on the hub."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from hub.api.deps import StoreDep, require
from hub.api.schemas import UserOut
from hub.auth import users

router = APIRouter(prefix="/users", tags=["users"], dependencies=[Depends(require())])


@router.get("", response_model=list[UserOut], summary="Users (no password hashes)")
def list_all(store: StoreDep) -> list[dict[str, Any]]:
    return users.list_users(store)
