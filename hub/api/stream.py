"""Live case changes as Server-Sent Events, read from the change outbox (works across workers).

Each event's data is the case event of `hub.cases.events`, the same JSON the webhooks POST. A stream
opened with a session cookie ends when the session does (idle limit, expiry, sign-out): the page's
reconnect then gets the 401 that says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from hub.api.deps import READERS, SettingsDep, StoreDep, require
from hub.auth import sessions
from hub.cases import events as case_events
from hub.cases import queries

router = APIRouter(prefix="/stream", tags=["stream"], dependencies=[Depends(require(*READERS))])


@router.get("/cases", summary="Case changes as text/event-stream",
            response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
async def case_stream(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    last_event_id: Annotated[int | None, Header(ge=0, le=2**62)] = None,
    after: Annotated[int | None, Query(ge=0, le=2**62, description="resume after this change id")] = None,
    max_events: Annotated[int | None, Query(ge=1, le=100_000, description="end the stream after N")] = None,
) -> StreamingResponse:
    loop = asyncio.get_running_loop()

    async def events() -> AsyncIterator[str]:
        cursor = after if after is not None else last_event_id
        if cursor is None:
            cursor = await asyncio.to_thread(_last, store)
        sent = 0
        yield "retry: 2000\n\n"
        cookie = None if request.headers.get("authorization") else request.cookies.get(sessions.COOKIE)
        idle = settings.accounts.session_idle
        check_every = min(15.0, idle.total_seconds() / 4)
        checked = loop.time()
        while not await request.is_disconnected():
            if cookie and loop.time() - checked >= check_every:
                checked = loop.time()
                if not await asyncio.to_thread(_live, store, cookie, idle):
                    return
            changes = await asyncio.to_thread(_since, store, cursor)
            for ch in changes:
                cursor = ch["id"]
                yield f"id: {cursor}\nevent: {ch['kind']}\ndata: {case_events.to_json(ch)}\n\n"
                sent += 1
                if max_events is not None and sent >= max_events:
                    return
            if not changes:
                yield ": keep-alive\n\n"
                await asyncio.sleep(settings.sse_poll_s)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _live(store: StoreDep, cookie: str, idle: timedelta) -> bool:
    try:
        sessions.check_session(store, cookie, idle, touch=False)
    except sessions.SessionEnded:
        return False
    return True


def _last(store: StoreDep) -> int:
    with store.engine.connect() as conn:
        return queries.last_change_id(conn)


def _since(store: StoreDep, cursor: int) -> list[dict]:
    with store.engine.connect() as conn:
        return queries.changes_since(conn, cursor)
