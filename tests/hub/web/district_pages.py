"""What the district page tests share: the hub served in a thread, a browser session, signing in with
a token, and the check that every string came from the catalogue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.delivery_support import free_port
from tests.hub.web.browser import CHROMIUM, CHROMIUM_ARGS


def serve(app: Any) -> tuple[str, Callable[[], None]]:
    """Run `app` under uvicorn on a free port in a daemon thread: (base URL, stop)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    runner = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    runner.start()
    give_up = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < give_up, "uvicorn did not start within 30 s"
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        runner.join(10)

    return f"http://127.0.0.1:{port}", stop


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's chromium through Playwright (never `playwright install`), closed afterwards."""
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        pw.stop()


def sign_in(page: Page, token: str) -> None:
    """Tokens sit behind the login's disclosure (people sign in with a password)."""
    expect(page.locator("#login")).to_be_visible()
    if not page.locator("#token").is_visible():
        page.click("#token-login summary")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#app")).to_be_visible()


def no_missing_messages(page: Page) -> None:
    """Every string the district views showed came from the catalogue (i18n.js)."""
    assert page.evaluate("[...I18N.missing]") == []
