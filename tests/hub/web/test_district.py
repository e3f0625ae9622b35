"""Running a camera from the hub page, end to end: a real hub (API + CURVE ingest) and a real edge agent
process (real detector on vtest.avi), driven in Debian's chromium.

One story, in order: the agent reports the config it runs; on the page an admin takes a snapshot, draws a
no-parking zone over the parked van on it and saves; the running agent applies it within seconds and its
next event is in the new zone. A rule param and a schedule window are edited through the rule's form
(invalid values refused with their inputs marked), shown as a diff, saved and run by the agent. Five
calibration pairs are picked on the snapshot and on the map, fitted (residuals shown) and saved; the
agent's next event places the van's case on the mapped ground. A config
with an error is refused by the page; one the agent rejects (on a
hub without the agent's check) shows the agent's message. An agent that was stopped gets the newest
version when it comes back. The audit lists every change.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Locator, Page, expect

from edge_agent.change.params import ChangeParams
from edge_agent.managed_config import check_for_hub
from hub.app import create_app, open_store
from hub.auth.tokens import create_token
from hub.cases.lifecycle import Role
from hub.devices.enrol import enroll_device
from hub.fleet import check
from hub.ingest.config import IngestConfig
from hub.ingest.loop import IngestLoop, start_in_thread
from hub.settings import HubSettings
from tests.delivery_support import free_port
from tests.hub.web.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: F401  (skips without Chromium)
from tests.hub.web.district_pages import chromium, no_missing_messages, serve, sign_in
from tests.shared_data import vtest_clip

REPO = Path(__file__).resolve().parents[3]
CAMERA = "plaza-cam"
CLIP_S = 12.0
# vtest.avi: a white van and a car stand at the top right for the whole clip; nothing parks bottom left.
EMPTY_CORNER = [[0.0, 0.75], [0.2, 0.75], [0.2, 1.0], [0.0, 1.0]]
VAN_CORNER = [(0.80, 0.04), (0.99, 0.04), (0.99, 0.22), (0.80, 0.22)]
# Calibration pairs: a picture point (fractions of the frame) around the van, and where on the calibration
# map (fractions of its box) the same spot is clicked: an affine layout, so the fit is near exact.
LON0, LAT0 = 120.155, 30.274
CALIBRATION_CLICKS = [((ix, iy), (0.15 + 0.7 * (ix - 0.6) / 0.37, 0.15 + 0.7 * (iy - 0.01) / 0.44))
                      for ix, iy in ((0.60, 0.01), (0.97, 0.01), (0.97, 0.45), (0.60, 0.45), (0.75, 0.30))]
pytestmark = [pytest.mark.timeout(240)]
expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vtest.avi's first seconds, looped by the agent."""
    return vtest_clip(tmp_path_factory.mktemp("video"), CLIP_S)


class Hub:
    def __init__(self, tmp: Path) -> None:
        self.data = tmp / "hub"
        self.ingest_port = free_port()
        self.settings = HubSettings(data_dir=self.data, zmq_bind=None, sse_poll_s=0.2)
        self.store = open_store(self.settings)
        self.stop = threading.Event()
        loop = IngestLoop(IngestConfig(bind=f"tcp://127.0.0.1:{self.ingest_port}", data_dir=self.data), self.store,
                          self.stop)
        errors = start_in_thread(loop, "ingest")
        assert not errors and loop.ready.is_set()
        self.base, self._stop_api = serve(create_app(self.settings, store=self.store, background=False))
        self.token = create_token(self.store, "chief", Role.ADMIN)[1]

    def api(self, path: str) -> Any:
        r = httpx.get(self.base + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        r.raise_for_status()
        return r.json()

    def close(self) -> None:
        self._stop_api()
        self.stop.set()
        self.store.close()


class Agent:
    """`cityeye edge run` with a bundle: the real agent process."""

    def __init__(self, tmp: Path, hub: Hub, video: Path) -> None:
        bundle = enroll_device(self.store_of(hub), hub.data, "box-1", f"tcp://127.0.0.1:{hub.ingest_port}")
        self.bundle = tmp / "bundle.json"
        bundle.save(self.bundle)
        self.config = tmp / "cam.yaml"
        self.config.write_text(yaml.safe_dump({
            "id": CAMERA, "source": str(video), "loop": True, "timezone": "Asia/Shanghai", "detect_fps": 2,
            "evidence": {"pre_s": 1, "post_s": 1, "clip": False},
            "zones": [{"id": "corner", "kind": "no_parking", "polygon": EMPTY_CORNER}],
            "rules": [{"id": "parking", "class_id": "illegal_car_parking", "zones": ["corner"],
                       "params": {"min_dwell_s": 2}}]}))
        self.tmp = tmp
        self.log = tmp / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def store_of(hub: Hub) -> Any:
        return hub.store

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cityeye", "edge", "run", "-c", str(self.config), "--bundle", str(self.bundle),
             "--spool", str(self.tmp / "spool"), "--hub-config-dir", str(self.tmp / "hub-config"),
             "--drain-s", "1"], cwd=REPO, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def wait_for(cond: Callable[[], Any], timeout: float, what: str, agent: Agent | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    tail = agent.log.read_text(errors="replace")[-3000:] if agent else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


@pytest.fixture
def world(tmp_path: Path, video: Path) -> Iterator[tuple[Hub, Agent]]:
    check.use(check_for_hub, change_params=ChangeParams)  # as `cityeye hub serve` does
    hub = Hub(tmp_path)
    agent = Agent(tmp_path, hub, video)
    agent.start()
    try:
        yield hub, agent
    finally:
        agent.stop()
        hub.close()
        check.use(None)


def click_at(page: Page, selector: str, fx: float, fy: float) -> None:
    page.locator(selector).scroll_into_view_if_needed()
    box = page.locator(selector).bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])


def change(field: Locator, value: str) -> None:
    """Type into a form input and leave it, as a person does (the form reads inputs on change)."""
    field.fill(value)
    field.dispatch_event("change")


def save(page: Page) -> None:
    page.click("#cfg-save")
    page.click("#cfg-confirm")
    expect(page.locator(".saved")).to_be_visible()


def test_zone_drawn_on_the_page_reaches_the_running_agent(world: tuple[Hub, Agent]) -> None:
    hub, agent = world
    wait_for(lambda: httpx.get(f"{hub.base}/cameras/{CAMERA}/config",
                               headers={"Authorization": f"Bearer {hub.token}"}).status_code == 200,
             60, "the agent's report of its config", agent)
    with chromium() as browser:
        page = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1100}).new_page()
        page.goto(hub.base + "/")
        sign_in(page, hub.token)
        page.goto(f"{hub.base}/#/camera/{CAMERA}")
        expect(page.locator("#cfg-status [data-status]")).to_have_attribute("data-status", "imported")

        # a fresh snapshot from the running agent, then a new zone drawn on it over the parked van
        page.click("#snapshot-btn")
        expect(page.locator("img.snapshot")).to_have_attribute("data-taken-at", re.compile(r"^20\d\d-"))
        page.click("#new-zone")
        for fx, fy in VAN_CORNER:
            click_at(page, "svg.zones-overlay", fx, fy)
        expect(page.locator(".zone-item.selected .zone-points")).to_have_attribute("data-points", "4")
        page.locator(".zone-item.selected .zone-id").fill("np_van")
        page.locator(".zone-item.selected .zone-id").dispatch_event("change")
        rule0 = page.locator("fieldset.rule[data-rule='0']")
        rule0.locator(".rule-zone[value='np_van']").check()
        rule0.locator(".rule-zone[value='corner']").uncheck()
        t_saved = time.monotonic()
        save(page)
        expect(page.locator(".diff")).to_have_count(0)
        expect(page.locator("#cfg-status [data-status]")).to_have_attribute("data-status", "accepted")
        applied_s = time.monotonic() - t_saved
        fleet = hub.api("/fleet")["devices"][0]["cameras"][0]
        wait_for(lambda: hub.api("/fleet")["devices"][0]["cameras"][0]["health"]["config_version"] == 1, 15,
                 "a heartbeat with the new version", agent)
        case = wait_for(lambda: [c for c in hub.api("/cases?limit=50")["items"] if c["zone"] == "np_van"], 60,
                        "an event in the new zone", agent)
        assert case and all(c["zone"] == "np_van" for c in hub.api("/cases?limit=50")["items"])
        assert applied_s < 10, f"the agent took {applied_s:.1f} s to apply the config"
        print(f"config applied {applied_s:.1f} s after saving; fleet row {fleet}")

        # invalid values in the rule's form are refused and their inputs marked: nothing is saved
        dwell = rule0.locator(".param-input[data-param='min_dwell_s']")
        expect(dwell).to_have_value("2")
        change(dwell, "-5")
        rule0.locator(".sched-on").select_option("scheduled")
        window = rule0.locator(".sched-window").first
        change(window.locator(".sched-end"), "25:00")
        page.click("#cfg-save")
        expect(page.locator(".issues li[data-path='rules[0].params.min_dwell_s']")).to_contain_text("greater than 0")
        expect(page.locator(".issues li[data-path='rules[0].schedule.windows[0].end']")).to_contain_text("25:00")
        expect(dwell).to_have_class(re.compile(r"\bfield-invalid\b"))
        expect(window.locator(".sched-end")).to_have_class(re.compile(r"\bfield-invalid\b"))
        expect(page.locator(".field-invalid")).to_have_count(2)
        assert hub.api(f"/cameras/{CAMERA}/config")["latest"]["version"] == 1

        # a rule param and a schedule window edited through the form: the diff, then the agent runs it
        change(dwell, "3")
        for day in ("sat", "sun"):
            window.locator(f".sched-day[value='{day}']").check()
        change(window.locator(".sched-start"), "00:00")
        change(window.locator(".sched-end"), "24:00")
        page.click("#cfg-save")
        diff = page.locator(".diff")
        expect(diff.locator("tr[data-path='rules[0].params.min_dwell_s'] td.new")).to_have_text("3")
        expect(diff.locator("tr[data-path='rules[0].schedule'] td.new")).to_contain_text('"24:00"')
        expect(page.locator(".field-invalid")).to_have_count(0)
        page.click("#cfg-confirm")
        expect(page.locator(".saved[data-version='2']")).to_be_visible()
        expect(page.locator("#cfg-status [data-status]")).to_have_attribute("data-status", "accepted")
        wait_for(lambda: hub.api("/fleet")["devices"][0]["cameras"][0]["health"]["config_version"] == 2, 15,
                 "a heartbeat with the version edited in the forms", agent)
        rule = hub.api(f"/cameras/{CAMERA}/config")["latest"]["body"]["rules"][0]
        assert rule["params"]["min_dwell_s"] == 3
        assert rule["schedule"]["windows"] == [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                                "start": "00:00", "end": "24:00"}]

        # calibration: five point pairs, each picked on the snapshot, then on the map (a plain grid: no tiles)
        change(page.locator(".calib-centre"), f"{LON0}, {LAT0}")
        page.click("#calib-centre-go")
        for (ix, iy), (mx, my) in CALIBRATION_CLICKS:
            page.click("#calib-add")
            expect(page.locator("#calib-hint")).to_contain_text("画面")
            click_at(page, "svg.zones-overlay", ix, iy)
            expect(page.locator("#calib-hint")).to_contain_text("地图")
            click_at(page, "#calib-map", mx, my)
        expect(page.locator(".calib tr[data-point]")).to_have_count(len(CALIBRATION_CLICKS))
        expect(page.locator("path.calib-map-point")).to_have_count(len(CALIBRATION_CLICKS))
        page.click("#calib-fit")
        expect(page.locator("#calib-result")).to_have_class(re.compile(r"\bok\b"))
        residuals = page.locator(".calib td.calib-residual").all_inner_texts()
        assert len(residuals) == 5 and all(float(r) < 4 for r in residuals), residuals
        page.click("#calib-use")
        save(page)
        expect(page.locator("#cfg-status [data-status]")).to_have_attribute("data-status", "accepted")
        stored = hub.api(f"/cameras/{CAMERA}/config")["latest"]["body"]["calibration"]
        assert stored["crs"] == "wgs84" and len(stored["points"]) == 5
        lons, lats = zip(*(p["world"] for p in stored["points"]), strict=True)
        assert abs(sum(lons) / 5 - LON0) < 3e-4 and abs(sum(lats) / 5 - LAT0) < 3e-4  # where the map was clicked
        # the agent places its next event with that homography: the van's case now sits on the mapped ground
        bbox = f"{min(lons)},{min(lats)},{max(lons)},{max(lats)}"
        wait_for(lambda: [c for c in hub.api(f"/cases?bbox={bbox}&limit=50")["items"] if c["zone"] == "np_van"], 60,
                 "the van's case placed by the new calibration", agent)
        page.goto(f"{hub.base}/#/map")
        expect(page.locator("path.map-camera")).to_have_count(1)
        expect(page.locator("path.map-case").first).to_be_attached()
        page.goto(f"{hub.base}/#/camera/{CAMERA}")
        expect(page.locator("#cfg-status [data-status]")).to_have_attribute("data-status", "accepted")

        # a hub without the agent's check saves it; the agent refuses and the page shows its message
        check.use(None)
        try:
            page.fill(".detect-fps", "100")
            page.locator(".detect-fps").dispatch_event("change")
            save(page)
            expect(page.locator("#cfg-status [data-status]")).to_have_attribute("data-status", "rejected")
            expect(page.locator(".agent-error")).to_contain_text("detect_fps")
        finally:
            check.use(check_for_hub)

        # an agent that is away gets the newest version when it is back
        agent.stop()
        page.fill(".detect-fps", "3")
        page.locator(".detect-fps").dispatch_event("change")
        save(page)
        time.sleep(1.5)
        assert hub.api(f"/cameras/{CAMERA}/config")["latest"]["status"] in ("pending", "sent")
        agent.start()
        expect(page.locator("#cfg-status [data-status]")).to_have_attribute("data-status", "accepted",
                                                                           timeout=60_000)
        assert hub.api(f"/cameras/{CAMERA}/config")["running_version"] == 5

        # the audit: who saved what, what the device answered
        actions = [(a["version"], a["action"], a["actor"]) for a in hub.api(f"/cameras/{CAMERA}/config/audit")]
        assert (1, "saved", "admin:chief") in actions and (1, "accepted", "device:box-1") in actions
        assert (2, "saved", "admin:chief") in actions and (2, "accepted", "device:box-1") in actions
        assert (3, "saved", "admin:chief") in actions and (3, "accepted", "device:box-1") in actions
        assert (4, "rejected", "device:box-1") in actions and (5, "accepted", "device:box-1") in actions
        saved = next(a for a in hub.api(f"/cameras/{CAMERA}/config/audit") if a["version"] == 1
                     and a["action"] == "saved")
        assert {c["path"] for c in saved["changes"]} >= {"zones[1]", "rules[0].zones"}
        expect(page.locator(".audit tr[data-action='saved']")).to_have_count(5)
        wait_for(lambda: hub.api("/fleet")["devices"][0]["cameras"][0]["online"], 60,
                 "the restarted agent's camera online again", agent)
        page.goto(f"{hub.base}/#/cameras")
        expect(page.locator("tr[data-camera='plaza-cam'] td[data-field='online']")).to_have_class("ok")
        no_missing_messages(page)
