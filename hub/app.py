"""The hub's FastAPI app: `create_app(settings)` assembles routers; the lifespan owns the resources.

The lifespan opens the store, starts the webhook worker, the overdue sweep and, when `settings.zmq_bind` is set, the
ZeroMQ ingest in a thread; all stop with the app. The reviewer web page (static files in `hub/web`) is
served at `/`; it reads everything through this API with the user's token.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hub.api import calendar as calendar_router
from hub.api import (
    cases,
    devices,
    error_handlers,
    evidence,
    fleet,
    health,
    intake,
    labels,
    me,
    open311,
    releases,
    session,
    stats,
    stream,
    tokens,
    users,
)
from hub.api import classes as classes_router
from hub.api import map as map_router
from hub.api import webhooks as webhooks_router
from hub.api.deps import deny_by_default
from hub.api.input_guard import InputGuard
from hub.api.log_redaction import redact_access_log
from hub.api.schemas import ERROR_RESPONSES
from hub.auth.rate import AttemptLimiter
from hub.cases import overdue, queries
from hub.ingest.config import IngestConfig
from hub.notify import webhooks
from hub.open311 import media as open311_media
from hub.releases import judge_loop
from hub.settings import HubSettings
from hub.storage.store import Store
from hub.web import web_mount


def tile_origins(tile_url: str | None) -> list[str]:
    """The origin of the map's tile service, for the page's image sources."""
    if not tile_url:
        return []
    parts = urlsplit(tile_url)
    return [f"{parts.scheme}://{parts.netloc}"]

log = logging.getLogger(__name__)


def open_store(settings: HubSettings) -> Store:
    return Store.from_settings(settings)


class HubCollector(Collector):
    """Metrics read at scrape time: in-process counters and database gauges."""

    def __init__(self, store: Store, ingest: Any = None) -> None:
        self.store, self.ingest = store, ingest

    def collect(self) -> Iterator[Any]:
        c = self.store.counters
        for name, value, doc in (("events", c.events, "events stored by this process"),
                                 ("duplicate_events", c.duplicates, "re-sent events recognised as duplicates"),
                                 ("cases_created", c.cases_created, "cases opened by this process")):
            yield CounterMetricFamily(f"cityeye_hub_{name}", doc, value=value)
        gauge = GaugeMetricFamily("cityeye_hub_cases", "cases by status", labels=["status"])
        with self.store.engine.connect() as conn:
            for status, n in queries.cases_by_status(conn).items():
                gauge.add_metric([status], n)
        yield gauge
        stats = getattr(self.ingest, "stats", None)
        for field in ("acked", "nacked", "duplicates", "heartbeats"):
            if hasattr(stats, field):
                yield CounterMetricFamily(f"cityeye_hub_ingest_{field}", f"ZeroMQ ingest {field}",
                                          value=getattr(stats, field))


def _start_ingest(settings: HubSettings, store: Store, stop: threading.Event) -> Any:
    """The ZeroMQ ingest (hub.ingest.loop.run_ingest) when configured; None when the API runs alone."""
    if not settings.zmq_bind:
        return None
    from hub.ingest.loop import run_ingest  # zmq is loaded only when ingest runs

    config = IngestConfig.from_settings(settings)
    if config.processes > 1:
        from hub.ingest.processes import run_ingest_processes

        ingest: Any = run_ingest_processes(config, settings, stop)
    else:
        ingest = run_ingest(config, store, stop)
    log.info("ZeroMQ ingest listening on %s (%d process(es))", settings.zmq_bind, config.processes)
    return ingest


def create_app(settings: HubSettings, *, store: Store | None = None, background: bool = True) -> FastAPI:
    """The hub API. Pass `store` to share an open one (it is then not closed here); `background=False`
    starts neither ingest nor the webhook worker nor the overdue sweep (tests drive them directly)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        own = store is None
        s = open_store(settings) if store is None else store
        stop = threading.Event()
        ingest = None
        workers: list[threading.Thread] = []
        if background:
            ingest = _start_ingest(settings, s, stop)
            workers.append(webhooks.start(s, stop, max_attempts=settings.webhook_max_attempts,
                                          backoff_s=settings.webhook_backoff_s,
                                          allow_cidrs=settings.webhook_allow_cidrs))
            workers.append(overdue.start(s, stop, poll_s=settings.overdue_sweep_s))
            workers.append(judge_loop.start(s, stop, poll_s=settings.rollout_judge_s))
            workers.append(open311_media.start(s, stop, settings))
        redact_access_log()  # after the server configured its loggers
        registry = CollectorRegistry()
        registry.register(HubCollector(s, ingest))
        try:
            yield {"store": s, "settings": settings, "metrics": registry,
                   "sign_in_limiter": AttemptLimiter(settings.accounts.sign_in_per_minute)}
        finally:
            stop.set()
            for worker in workers:  # a tick in flight finishes before the store closes
                worker.join(timeout=10)
            if own:
                s.close()

    app = FastAPI(
        title="CityEye hub",
        version="1",
        summary="Cases from edge cameras, sensors and people: review, dispatch, handle, verify, close.",
        lifespan=lifespan,
        dependencies=[Depends(deny_by_default)],
        responses=ERROR_RESPONSES,
    )
    for router in (health.router, cases.router, evidence.router, evidence.upload_router, intake.router,
                   devices.router, classes_router.router, stats.router, stream.router, webhooks_router.router,
                   tokens.router, open311.router, me.router, session.router, users.router, labels.router,
                   releases.router, releases.stats_router, releases.device_router, fleet.router, map_router.router,
                   calendar_router.router):
        app.include_router(router)

    app.add_middleware(InputGuard)

    error_handlers.install(app)

    # The reviewer page at / (public files; all its data comes from the API with the user's token).
    app.router.routes.append(web_mount(lambda: tile_origins(settings.map.tile_url)))
    return app
