"""Webhook subscriptions and their delivery log (admin only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.exceptions import RequestValidationError

from hub import errors
from hub.api.deps import SettingsDep, StoreDep, require
from hub.api.schemas import DeliveryOut, WebhookIn, WebhookOut
from hub.errors import Refused
from hub.notify import subscriptions
from hub.notify.egress import EgressPolicy, TargetRefused

RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
router = APIRouter(prefix="/webhooks", tags=["webhooks"], dependencies=[Depends(require())])


@router.post("", response_model=WebhookOut, status_code=201, summary="Subscribe a URL to case changes",
             description="The URL must be http(s), without credentials, and reach only public addresses, or "
                         "networks listed in the hub setting webhook_allow_cidrs (422 otherwise).")
def create(body: WebhookIn, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    try:
        EgressPolicy.of(settings.webhook_allow_cidrs).check_url(body.url)
    except TargetRefused as exc:  # the same shape as the model's own field errors
        raise RequestValidationError([{"type": "url_refused", "loc": ("body", "url"), "msg": str(exc),
                                       "input": body.url}]) from exc
    return subscriptions.subscribe(store, body.url, body.secret, body.kinds)


@router.get("", response_model=list[WebhookOut], summary="Subscriptions (secrets not shown)")
def list_all(store: StoreDep) -> list[dict[str, Any]]:
    return subscriptions.list_all(store)


@router.delete("/{webhook_id}", status_code=204, summary="Deactivate a subscription")
def deactivate(webhook_id: RowId, store: StoreDep) -> None:
    if not subscriptions.deactivate(store, webhook_id):
        raise Refused(errors.NOT_FOUND, f"no webhook {webhook_id}")


@router.get("/{webhook_id}/deliveries", response_model=list[DeliveryOut], summary="Recent deliveries")
def deliveries(webhook_id: RowId, store: StoreDep) -> list[dict[str, Any]]:
    return subscriptions.deliveries(store, webhook_id)
