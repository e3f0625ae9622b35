"""The fleet page follows the agents' heartbeats by itself: a real Outbox heartbeats over CURVE into a real
ingest loop, its agent's dropped-frame count changes, and the figure on the open page (Debian's chromium)
changes without a reload, while the row the reader selected and their scroll position stay."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from edge_agent.deliver import Outbox, OutboxConfig
from edge_agent.ingest import SourceState
from edge_agent.metrics import EdgeMetrics
from hub.app import create_app, open_store
from hub.auth.tokens import create_token
from hub.cases.lifecycle import Role
from hub.devices.enrol import enroll_device
from hub.ingest.config import IngestConfig
from hub.ingest.loop import IngestLoop, start_in_thread
from hub.settings import HubSettings
from tests.delivery_support import free_port
from tests.hub.web.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: F401  (skips without Chromium)
from tests.hub.web.district_pages import chromium, no_missing_messages, serve, sign_in

pytestmark = pytest.mark.timeout(120)
CAMERAS = [f"gate-{i:02d}" for i in range(40)]  # enough rows to scroll


def test_fleet_page_follows_heartbeats_without_reload(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    settings = HubSettings(data_dir=data, zmq_bind=None)
    store = open_store(settings)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    bundle = enroll_device(store, data, "box-1", endpoint)
    stop = threading.Event()
    assert not start_in_thread(IngestLoop(IngestConfig(bind=endpoint, data_dir=data), store, stop), "ingest")
    metrics = EdgeMetrics()
    for cid in CAMERAS:
        cam = metrics.camera(cid)
        cam.ingest.state, cam.ingest.last_frame_wall = SourceState.ONLINE, time.time()
        cam.ingest.frames_dropped = 7
    watched = metrics.camera(CAMERAS[-1])
    outbox = Outbox(bundle, OutboxConfig(spool_dir=tmp_path / "spool", heartbeat_s=0.2), health=metrics.health,
                    agent_version="9.9.9")
    token = create_token(store, "chief", Role.ADMIN)[1]
    base, stop_api = serve(create_app(settings, store=store, background=False))
    try:
        with outbox, chromium() as browser:
            page = browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 500}).new_page()
            page.goto(base + "/")
            sign_in(page, token)
            page.goto(base + "/#/cameras")
            row = page.locator(f"tr[data-camera='{CAMERAS[-1]}']")
            expect(row.locator("td[data-field='dropped']")).to_have_text("7", timeout=15_000)
            # the reader scrolls down to the last camera and selects its row
            row.scroll_into_view_if_needed()
            row.locator("td[data-field='device']").click()
            expect(row).to_have_class("selected")
            page.evaluate("window.__notReloaded = true")
            scroll_y = page.evaluate("window.scrollY")
            assert scroll_y > 0

            t0 = time.monotonic()
            watched.ingest.frames_dropped = 4321  # the agent counts more dropped frames; its heartbeat says so
            expect(row.locator("td[data-field='dropped']")).to_have_text("4321", timeout=15_000)
            shown_after_s = time.monotonic() - t0
            assert page.evaluate("window.__notReloaded === true")
            expect(row).to_have_class("selected")
            assert page.evaluate("window.scrollY") == scroll_y
            expect(page.locator("#fleet-live")).to_have_attribute("data-updated", re.compile(r"^\d+$"))
            no_missing_messages(page)
            print(f"a heartbeat's figure shown {shown_after_s:.1f} s after the agent counted it "
                  f"(load {os.getloadavg()[0]:.1f})")
    finally:
        stop_api()
        stop.set()
        store.close()
