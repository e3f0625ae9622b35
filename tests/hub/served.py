"""A hub app served by uvicorn on a free port in a thread, for tests that need real HTTP (browsers, fuzzers)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_app(app: Any, start_timeout_s: float = 20, tls: tuple[Any, Any] | None = None) -> Iterator[str]:
    """Serve `app`; yields its base URL (http://127.0.0.1:PORT; with `tls` = (cert file, key file),
    https://localhost:PORT) and stops the server on exit."""
    port = free_port()
    ssl = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **ssl))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def served_hub(data_dir: Any, db_url: str | None = None) -> Iterator[dict[str, Any]]:
    """A served hub (API only) holding one camera case; yields its base URL and an admin's auth headers."""
    from hub.app import create_app, open_store
    from hub.auth.tokens import create_token
    from hub.cases.lifecycle import Role
    from hub.settings import HubSettings
    from tests.hub.hubfactory import ingest, make_event

    hub_settings = HubSettings(data_dir=data_dir, db_url=db_url, zmq_bind=None, default_unit="sanitation")
    store = open_store(hub_settings)
    try:
        event, media = make_event()
        ingest(store, event, media)
        _, token = create_token(store, "fuzzer", Role.ADMIN)
        with serve_app(create_app(hub_settings, store=store, background=False)) as base:
            yield {"base": base, "headers": {"Authorization": f"Bearer {token}"}}
    finally:
        store.close()
