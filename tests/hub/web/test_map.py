"""The map page in Debian's chromium: the demo's camera (calibrated to WGS84) and its cases, on tiles from
a local tile server (as a bureau's own tile service) and, without tiles, on a plain grid in calibrated
coordinates; the case list follows the map's view (the API's bbox filter). Also the working calendar:
the official China days from the `holidays` package and the bureau's own days, edited on the page."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from calibration.homography import fit_homography
from cityeye.commands.demo import CAMERA_ID, DEMO_CAMERA
from edge_agent.config import parse_camera_config
from edge_agent.managed_config import config_body
from hub.app import create_app, open_store
from hub.auth.tokens import create_token
from hub.cases import intake
from hub.cases.lifecycle import Role
from hub.fleet import configs
from hub.open311 import media
from hub.settings import HubSettings, UnitConfig
from protocol.messages import GroundPoint, MediaKind, MediaRef, NormBox, ProblemEvent, ProblemState
from protocol.push import ManagedBy, PushKind, PushResult
from tests.delivery_support import free_port
from tests.hub.web.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: F401  (skips without Chromium)
from tests.hub.web.district_pages import chromium, no_missing_messages, serve, sign_in

pytestmark = pytest.mark.timeout(120)
expect.set_options(timeout=15_000)

# The demo camera calibrated on a plaza: four ground points of vtest.avi's view paired with WGS84.
LON0, LAT0 = 120.15500, 30.27400
M_LON, M_LAT = 1 / 96_140, 1 / 110_900  # degrees per metre at this latitude
CALIBRATION = {"crs": "wgs84", "points": [
    {"image": [0.05, 0.95], "world": [LON0, LAT0]},
    {"image": [0.95, 0.95], "world": [LON0 + 20 * M_LON, LAT0]},
    {"image": [0.80, 0.35], "world": [LON0 + 30 * M_LON, LAT0 + 40 * M_LAT]},
    {"image": [0.20, 0.35], "world": [LON0 - 10 * M_LON, LAT0 + 40 * M_LAT]},
]}
CASE_PLACES = [(5.0, 5.0), (15.0, 30.0), (-5.0, 35.0)]  # metres east/north of LON0, LAT0: > 15 m apart


class TileServer:
    """A bureau's tile service stand-in: one PNG for every /z/x/y.png, and a count of what was asked."""

    def __init__(self) -> None:
        ok, png = cv2.imencode(".png", np.full((256, 256, 3), (200, 230, 200), np.uint8))
        assert ok
        body, self.hits = png.tobytes(), []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(inner) -> None:
                self.hits.append(inner.path)
                inner.send_response(200)
                inner.send_header("Content-Type", "image/png")
                inner.send_header("Content-Length", str(len(body)))
                inner.end_headers()
                inner.wfile.write(body)

            def log_message(inner, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{{z}}/{{x}}/{{y}}.png"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


def add_case(store: Any, i: int, east: float, north: float) -> None:
    data = jpeg()
    import hashlib

    ref = MediaRef(name="snapshot.jpg", kind=MediaKind.SNAPSHOT, content_type="image/jpeg", size=len(data),
                   sha256=hashlib.sha256(data).hexdigest())
    at = datetime.now(UTC) - timedelta(minutes=10 - i)
    event = ProblemEvent(event_id=f"ev-map-{i:04d}", problem_id=f"pr-map-{i:04d}", device_id="demo-box",
                         camera_id=CAMERA_ID, class_id="illegal_car_parking", state=ProblemState.OPENED,
                         zone="np_top_right", box=NormBox(x1=0.1 * i, y1=0.5, x2=0.1 * i + 0.1, y2=0.6), score=0.9,
                         first_seen=at - timedelta(minutes=2), observed_at=at, dwell_s=120.0,
                         ground=GroundPoint(crs="wgs84", x=LON0 + east * M_LON, y=LAT0 + north * M_LAT), media=[ref])
    store.ingest_event(event, {"snapshot.jpg": data}, manifest=b'{"m":1}', signature=b"s" * 64, seq=i + 1)


ADDRESS = "人民路 1 号"


def add_address_case(store: Any, settings: HubSettings) -> str:
    """A citizen's report with only an address and a photo link, which the hub (default settings) refuses to
    fetch: the link is on 127.0.0.1."""
    report = intake.ManualReport(class_id="exposed_garbage", address=ADDRESS, description="media_url: http://127.0.0.1:9/a.jpg")
    result = intake.ingest_manual(store, report, "citizen-app", "m-address-1")
    assert result.case_id
    case_id = result.case_id
    store.write(lambda conn: media.record_link(conn, case_id, "manual:citizen-app", "m-address-1",
                                               "http://127.0.0.1:9/a.jpg", True))
    assert media.MediaFetcher(store, threading.Event(), media.FetchLimits.from_settings(settings)).tick() == 1
    return case_id


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, HubSettings, Any]]:
    data = Path(tmp_path_factory.mktemp("maphub"))
    settings = HubSettings(data_dir=data, zmq_bind=None, sse_poll_s=0.2, default_unit="sanitation",
                           units=[UnitConfig(id="plaza", bbox=(LON0 - 0.01, LAT0 - 0.01, LON0 + 0.01, LAT0 + 0.01)),
                                  UnitConfig(id="sanitation")])
    store = open_store(settings)
    store.add_device("demo-box", "curve", "sign")
    demo = parse_camera_config({**DEMO_CAMERA, "source": "vtest.avi", "calibration": CALIBRATION})
    configs.record_result(store, PushResult(device_id="demo-box", kind=PushKind.CAMERA_CONFIG, target=CAMERA_ID,
                                            version=0, accepted=True, report=True, managed_by=ManagedBy.HUB,
                                            current=config_body(demo)))
    for i, (east, north) in enumerate(CASE_PLACES):
        add_case(store, i, east, north)
    add_address_case(store, settings)
    base, stop = serve(create_app(settings, store=store, background=False))
    yield base, create_token(store, "chief", Role.ADMIN)[1], settings, store
    stop()
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def open_page(browser: Browser, base: str, token: str, hash_: str) -> Page:
    page = browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 900}).new_page()
    page.goto(base + "/")
    sign_in(page, token)
    page.goto(base + "/" + hash_)
    return page


def test_map_with_tiles_from_the_bureaus_tile_server(hub: tuple[str, str, HubSettings, Any],
                                                     browser: Browser) -> None:
    base, token, settings, _ = hub
    tiles = TileServer()
    settings.map.tile_url = tiles.url
    try:
        page = open_page(browser, base, token, "#/map")
        expect(page.locator("#map[data-ready='1']")).to_be_attached()
        expect(page.locator("path.map-camera")).to_have_count(1)
        expect(page.locator("path.map-case")).to_have_count(len(CASE_PLACES))
        expect(page.locator("img.leaflet-tile-loaded").first).to_be_attached()
        assert tiles.hits and all(h.endswith(".png") for h in tiles.hits)
        expect(page.locator("#map-cases li")).to_have_count(len(CASE_PLACES))
        # zoom onto one case: the list follows the map's view through the bbox filter
        east, north = CASE_PLACES[0]
        page.evaluate(f"window.CityEye.map.setView([{LAT0 + north * M_LAT}, {LON0 + east * M_LON}], 22)")
        expect(page.locator("#map-cases li")).to_have_count(1)
        no_missing_messages(page)
    finally:
        settings.map.tile_url = None
        tiles.server.shutdown()


def test_map_without_tiles_is_a_grid_in_calibrated_coordinates(hub: tuple[str, str, HubSettings, Any],
                                                               browser: Browser) -> None:
    base, token, _, _ = hub
    page = open_page(browser, base, token, "#/map")
    expect(page.locator("#map[data-ready='1']")).to_be_attached()
    expect(page.locator(".map-grid")).to_be_attached()
    expect(page.locator("img.leaflet-tile")).to_have_count(0)
    expect(page.locator("path.map-camera")).to_have_count(1)
    expect(page.locator("path.map-case")).to_have_count(len(CASE_PLACES))
    expect(page.locator("#map-cases li")).to_have_count(len(CASE_PLACES))
    no_missing_messages(page)


def test_cases_with_no_position_are_listed_not_plotted(hub: tuple[str, str, HubSettings, Any],
                                                       browser: Browser) -> None:
    base, token, _, _ = hub
    page = open_page(browser, base, token, "#/map")
    expect(page.locator("#map[data-ready='1']")).to_be_attached()
    expect(page.locator("path.map-case")).to_have_count(len(CASE_PLACES))  # not plotted
    expect(page.locator("#map-nowhere-title")).to_have_text("无位置的案件（1，地图上不标出）")
    expect(page.locator("#map-nowhere li")).to_have_count(1)
    expect(page.locator("#map-nowhere li")).to_contain_text(ADDRESS)
    page.click("#map-nowhere li a")
    expect(page.locator("#case-address")).to_have_text(ADDRESS)
    expect(page.locator("#case-location")).to_have_text("无位置（只有地址，地图上不标出）")
    expect(page.locator("#case-unit")).to_contain_text("sanitation")  # the area unit "plaza" cannot apply
    expect(page.locator("#case-unit .routing-note")).to_have_text("无位置：不按辖区划分，按类别或默认单位派遣")
    fetch = page.locator(".media-fetches li[data-status='failed']")
    expect(fetch).to_contain_text("获取失败，保留链接")
    expect(fetch).to_contain_text("loopback")
    no_missing_messages(page)


def test_working_calendar_official_days_and_the_bureaus_own(hub: tuple[str, str, HubSettings, Any],
                                                            browser: Browser) -> None:
    base, token, _, store = hub
    page = open_page(browser, base, token, "#/calendar?year=2026")
    expect(page.locator(".official tr[data-date='2026-10-01'][data-kind='off']")).to_contain_text("国庆节")
    expect(page.locator(".official tr[data-date='2026-02-14'][data-kind='work']")).to_be_attached()
    page.fill(".new-days_off", "2026-03-02")
    page.click(".add-days_off")
    page.fill(".new-working_days", "2026-10-01")
    page.click(".add-working_days")
    page.click("#calendar-save")
    expect(page.locator(".toast")).to_contain_text("工作日历已保存")
    calendar = store.deadlines.calendar
    assert not calendar.is_workday(date(2026, 3, 2)) and calendar.is_workday(date(2026, 10, 1))
    assert not calendar.is_workday(date(2026, 10, 2)) and calendar.is_workday(date(2026, 2, 14))
    no_missing_messages(page)


def test_calibration_fit_shows_the_error_and_names_a_mispaired_point(hub: tuple[str, str, HubSettings, Any]) -> None:
    import httpx

    base, token, _, _ = hub
    auth = {"Authorization": f"Bearer {token}"}
    four = fit_homography(np.array([p["image"] for p in CALIBRATION["points"]]) * (1920, 1080),
                          np.array([p["world"] for p in CALIBRATION["points"]]), "wgs84")
    extra = [{"image": [x, y], "world": [float(v) for v in four.image_to_world(np.array([[x * 1920, y * 1080]]))[0]]}
             for x, y in ((0.5, 0.65), (0.3, 0.8))]
    good = httpx.post(f"{base}/calibration/fit", headers=auth, timeout=10,
                      json={**CALIBRATION, "points": [*CALIBRATION["points"], *extra]}).json()
    assert good["ok"] and good["error_m"] < 0.1 and len(good["point_errors_px"]) == 6
    swapped = [*CALIBRATION["points"], extra[0], {**extra[1], "world": [LON0 + 60 * M_LON, LAT0 - 30 * M_LAT]}]
    bad = httpx.post(f"{base}/calibration/fit", headers=auth, timeout=10,
                     json={**CALIBRATION, "points": swapped}).json()
    assert not bad["ok"] and "points [6]" in bad["message"] and bad["point_errors_px"][5] > 50
    few = httpx.post(f"{base}/calibration/fit", headers=auth, timeout=10,
                     json={**CALIBRATION, "points": CALIBRATION["points"][:3]})
    assert few.status_code == 422
