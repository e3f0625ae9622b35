"""Liveness/readiness and Prometheus metrics (public: probes and scrapers carry no token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub.api.deps import StoreDep, public
from hub.storage import migrations

router = APIRouter(tags=["health"], dependencies=[Depends(public)])


@router.get("/health", summary="Database reachable and schema current")
def health(store: StoreDep) -> dict[str, Any]:
    store.ping()
    return {"status": "ok", "database": store.engine.dialect.name, "schema_version": migrations.SCHEMA_VERSION}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.state.metrics), media_type=CONTENT_TYPE_LATEST)
