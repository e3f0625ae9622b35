"""Photos that Open311 clients link (`media_url`), fetched by the hub in the background and kept as evidence.

A POST records the link (a `media_fetches` row, `pending`) in its own transaction and answers at once; the
fetcher thread takes pending rows and GETs each URL under the webhooks' address rules
(hub.notify.egress: public addresses only unless the network is listed in `open311_media_allow_cidrs`,
checked on the address actually connected to, redirects included), with a size cap, a time limit, and only
a JPEG that decodes. A photo that passes is stored in the evidence store by its SHA-256 and becomes a media
row of the report's event, so it shows on the case and goes into the evidence package with its hash. A
fetch that fails keeps the link (in the case's description, as before) and records why (`failed`, `reason`).
With `open311_media_fetch` false a link is recorded as `off` and never fetched.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import cv2
import httpx
import numpy as np
from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection

from hub.evidence.files import EvidenceError
from hub.evidence.jpeg import jpeg_error
from hub.notify.egress import EgressPolicy, TargetRefused, guarded_client
from hub.settings import HubSettings
from hub.storage import db, schema
from hub.storage.store import Store
from protocol.messages import MediaKind

log = logging.getLogger(__name__)

ALLOW_SETTING = "open311_media_allow_cidrs"
JPEG_TYPES = frozenset({"image/jpeg", "image/jpg", "image/pjpeg"})
MEDIA_NAME = "media_url.jpg"  # the fetched photo's name among the report's media
LEASE_S = 600.0  # a fetch claimed this long ago by a hub that stopped is taken again
MAX_REDIRECTS = 5


class MediaRefused(Exception):
    """The linked file is not kept; the message says why (it is recorded on the case)."""


@dataclass(frozen=True)
class FetchLimits:
    policy: EgressPolicy
    max_bytes: int
    timeout_s: float  # the whole fetch: connecting, each read and the total

    @classmethod
    def from_settings(cls, settings: HubSettings) -> FetchLimits:
        return cls(EgressPolicy.of(settings.open311_media_allow_cidrs, purpose="media_url fetches",
                                   setting=ALLOW_SETTING),
                   int(settings.open311_media_max_mb * 1024 * 1024), settings.open311_media_timeout_s)


def record_link(conn: Connection, case_id: str, device_id: str, event_id: str, url: str, fetch: bool) -> None:
    """Inside the POST's transaction or after it: the report's link, to fetch (`fetch`) or kept as a link."""
    e = schema.events
    event_pk = conn.execute(select(e.c.id).where(e.c.device_id == device_id, e.c.event_id == event_id)).scalar_one()
    now = db.utcnow()
    conn.execute(schema.media_fetches.insert().values(
        case_id=case_id, event_pk=event_pk, url=url, status="pending" if fetch else "off", created_at=now,
        reason=None if fetch else "fetching is off (hub setting open311_media_fetch); the link is kept",
        done_at=None if fetch else now))


def fetch_jpeg(client: httpx.Client, url: str, limits: FetchLimits) -> bytes:
    """The JPEG at `url`, checked: allowed address, HTTP 200, JPEG content type, at most max_bytes, within
    the time limit, and decodable. MediaRefused says what failed."""
    try:
        limits.policy.check_url(url)  # the connect-time check repeats it on the address actually connected to
    except TargetRefused as exc:
        raise MediaRefused(f"refused: {exc}") from None
    deadline = time.monotonic() + limits.timeout_s
    data = bytearray()
    try:
        with client.stream("GET", url, follow_redirects=True, headers={"Accept": "image/jpeg"}) as resp:
            if resp.status_code != 200:
                raise MediaRefused(f"HTTP {resp.status_code} from {resp.url}")
            kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind not in JPEG_TYPES:
                raise MediaRefused(f"content type {kind or '(none)'!r} is not a JPEG photo (image/jpeg)")
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limits.max_bytes:
                raise MediaRefused(f"{int(declared)} bytes, over the limit of {limits.max_bytes} "
                                   "(hub setting open311_media_max_mb)")
            for chunk in resp.iter_bytes():
                data += chunk
                if len(data) > limits.max_bytes:
                    raise MediaRefused(f"over the limit of {limits.max_bytes} bytes (hub setting open311_media_max_mb)")
                if time.monotonic() > deadline:
                    raise MediaRefused(f"took longer than {limits.timeout_s:g} s (hub setting open311_media_timeout_s)")
    except TargetRefused as exc:  # at connect time, e.g. a redirect or a name that now resolves elsewhere
        raise MediaRefused(f"refused: {exc}") from None
    except httpx.TimeoutException:
        raise MediaRefused(f"no answer within {limits.timeout_s:g} s (hub setting open311_media_timeout_s)") from None
    except httpx.TooManyRedirects:
        raise MediaRefused(f"more than {MAX_REDIRECTS} redirects") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise MediaRefused(f"{type(exc).__name__}: {exc}") from None
    return _decodable(bytes(data))


def _decodable(data: bytes) -> bytes:
    reason = jpeg_error(data)
    if reason is None and cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
        reason = "the decoder cannot read it"
    if reason is not None:
        raise MediaRefused(f"not a JPEG photo that decodes: {reason}")
    return data


class MediaFetcher:
    """Built from (store, limits, stop_event); `run()` polls every `poll_s` until stopped."""

    def __init__(self, store: Store, stop_event: threading.Event, limits: FetchLimits, *, poll_s: float = 0.5) -> None:
        self.store, self.stop_event, self.limits, self.poll_s = store, stop_event, limits, poll_s
        self.client = guarded_client(limits.policy, limits.timeout_s)
        self.client.max_redirects = MAX_REDIRECTS

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                done = self.tick()
            except Exception:  # keep fetching after a database hiccup; the next tick retries
                log.exception("media_url fetcher tick failed")
                done = 0
            if not done:
                self.stop_event.wait(self.poll_s)
        self.client.close()

    def tick(self) -> int:
        """Fetch what is pending (up to 10); returns how many were handled."""
        claimed = self.store.write(self._claim)
        for row in claimed:
            self._fetch(row)
        return len(claimed)

    def _claim(self, conn: Connection) -> list[dict[str, Any]]:
        f = schema.media_fetches
        now = db.utcnow()
        stale = now - timedelta(seconds=LEASE_S)
        query = (select(f.c.id, f.c.case_id, f.c.event_pk, f.c.url)
                 .where(or_(f.c.status == "pending", (f.c.status == "fetching") & (f.c.claimed_at < stale)))
                 .order_by(f.c.id).limit(10))
        if db.is_postgres(conn):
            query = query.with_for_update(skip_locked=True)
        rows = [dict(r._mapping) for r in conn.execute(query)]
        if rows:
            conn.execute(update(f).where(f.c.id.in_([r["id"] for r in rows])).values(status="fetching", claimed_at=now))
        return rows

    def _fetch(self, row: dict[str, Any]) -> None:
        try:
            data = fetch_jpeg(self.client, row["url"], self.limits)
            sha = self.store.evidence.put(data)
        except MediaRefused as exc:
            self._finish(row, "failed", reason=str(exc)[:1000])
            return
        except (EvidenceError, OSError) as exc:
            self._finish(row, "failed", reason=f"could not store it: {exc}"[:1000])
            return
        self._finish(row, "stored", sha256=sha, size=len(data))

    def _finish(self, row: dict[str, Any], status: str, *, reason: str | None = None, sha256: str | None = None,
                size: int = 0) -> None:
        def tx(conn: Connection) -> None:
            now = db.utcnow()
            if sha256 is not None:
                conn.execute(schema.media.insert().values(
                    event_pk=row["event_pk"], name=MEDIA_NAME, kind=MediaKind.SNAPSHOT.value,
                    content_type="image/jpeg", size=size, sha256=sha256))
            conn.execute(update(schema.media_fetches).where(schema.media_fetches.c.id == row["id"]).values(
                status=status, reason=reason, sha256=sha256, content_type="image/jpeg" if sha256 else None,
                done_at=now))
            conn.execute(schema.case_changes.insert().values(
                at=now, case_id=row["case_id"], kind="case.updated", status=_status(conn, row["case_id"]),
                data={"actor": "hub", "changed": "media_url", "media_url": status}))

        self.store.write(tx)
        self.store.notify(row["case_id"], "case.updated")
        log.info("media_url of case %s: %s%s", row["case_id"], status, f" ({reason})" if reason else "")


def _status(conn: Connection, case_id: str) -> str:
    c = schema.cases
    return str(conn.execute(select(c.c.status).where(c.c.case_id == case_id)).scalar_one())


def start(store: Store, stop_event: threading.Event, settings: HubSettings) -> threading.Thread:
    fetcher = MediaFetcher(store, stop_event, FetchLimits.from_settings(settings))
    thread = threading.Thread(target=fetcher.run, name="media-url-fetcher", daemon=True)
    thread.start()
    return thread
