"""The reviewer web page in a real browser (Debian's chromium through Playwright) against a real hub.

The hub runs under uvicorn on a free port (embedded SQLite in a temp dir); cases come in through the
store's edge intake with real JPEG evidence. Each test opens its own browser context (own session
storage), signs in with a token and works the page as a reviewer would; outcomes are checked on the
page and through the REST API. Set CITYEYE_WEB_SCREENSHOTS=DIR to keep screenshots of the views.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from edge_agent.annotate import draw_box
from edge_agent.clips import encode_clip
from edge_agent.evidence import problem_label
from hub.app import create_app, open_store
from hub.auth.tokens import create_token
from hub.cases.lifecycle import Role
from hub.settings import HubSettings, UnitConfig
from hub.storage.store import Store
from protocol.messages import CameraHealth, Heartbeat, MediaKind, MediaRef, NormBox, ProblemEvent, ProblemState
from tests.hub.served import serve_app
from tests.hub.web.browser import CHROMIUM, CHROMIUM_ARGS

SHOTS = os.environ.get("CITYEYE_WEB_SCREENSHOTS")
pytestmark = pytest.mark.timeout(120)
# Assertions wait as long as actions do (10 s): on a loaded 2-core box an API answer can take over the default 5 s.
expect.set_options(timeout=10_000)


# ---- evidence: real JPEGs and an MJPEG AVI, like the edge agent sends ---------------------------------


def _scene(seed: int, w: int = 640, h: int = 360) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), (92, 98, 104), np.uint8)
    cv2.rectangle(img, (0, int(h * 0.55)), (w, h), (70, 74, 78), -1)  # road
    for x in range(0, w, 80):
        cv2.line(img, (x, int(h * 0.78)), (x + 40, int(h * 0.78)), (220, 220, 220), 3)
    color = tuple(int(c) for c in rng.integers(40, 230, 3))
    cv2.rectangle(img, (int(w * 0.55), int(h * 0.45)), (int(w * 0.85), int(h * 0.72)), color, -1)  # a vehicle
    return img


def _jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def _clip(img: np.ndarray) -> tuple[str, str, bytes]:
    """A clip made the way the edge agent makes them: (name, content type, bytes)."""
    fmt, data = encode_clip([np.roll(img, i * 8, axis=1) for i in range(4)], 2.0)
    return fmt.name, fmt.content_type, data


def edge_event(tmp: Path, *, camera_id: str, class_id: str = "illegal_car_parking", zone: str = "np-1",
               at: datetime | None = None) -> tuple[ProblemEvent, dict[str, bytes]]:
    at = at or datetime.now(UTC)
    scene = _scene(int.from_bytes(secrets.token_bytes(2), "big"))
    annotated = scene.copy()  # drawn as the agent draws it: the class's Chinese name in the shipped font
    draw_box(annotated, (640 * 0.55, 360 * 0.45, 640 * 0.85, 360 * 0.72), problem_label(class_id, "opened", 312),
             (0, 0, 255))
    clip_name, clip_type, clip = _clip(scene)
    files = {
        "snapshot.jpg": (MediaKind.SNAPSHOT, "image/jpeg", _jpeg(scene)),
        "annotated.jpg": (MediaKind.ANNOTATED, "image/jpeg", _jpeg(annotated)),
        "crop.jpg": (MediaKind.CROP, "image/jpeg", _jpeg(scene[162:260, 352:544])),
        clip_name: (MediaKind.CLIP, clip_type, clip),
    }
    refs = [MediaRef(name=n, kind=k, content_type=ct, size=len(b), sha256=hashlib.sha256(b).hexdigest())
            for n, (k, ct, b) in files.items()]
    event = ProblemEvent(
        event_id=f"ev-{secrets.token_hex(6)}", problem_id=f"p-{secrets.token_hex(4)}", device_id="box-1",
        camera_id=camera_id, class_id=class_id, state=ProblemState.OPENED, zone=zone,
        box=NormBox(x1=0.55, y1=0.45, x2=0.85, y2=0.72), score=0.91, first_seen=at - timedelta(minutes=5),
        observed_at=at, dwell_s=300.0, media=refs,
    )
    return event, {n: b for n, (_, _, b) in files.items()}


def add_case(store: Store, tmp: Path, camera_id: str, **kw: Any) -> str:
    event, media = edge_event(tmp, camera_id=camera_id, **kw)
    result = store.ingest_event(event, media, manifest=b'{"m":1}', signature=b"s" * 64, seq=1)
    assert result.created and result.case_id
    return result.case_id


# ---- a served hub and a browser -------------------------------------------------------------------------


@dataclass
class Hub:
    base: str
    store: Store
    data: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def api(self, role: str, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.base + path, headers={"Authorization": f"Bearer {self.tokens[role]}"},
                             timeout=10, **kw)



@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    data = Path(tmp_path_factory.mktemp("webhub"))
    # camera_offline_after_s: the module's one heartbeat (below) must count as fresh through all its tests
    settings = HubSettings(data_dir=data, zmq_bind=None, sse_poll_s=0.2, camera_offline_after_s=3600,
                           units=[UnitConfig(id="district-east", name="East district 东区中队", cameras=["cam-east"]),
                                  UnitConfig(id="sanitation", name="Sanitation 环卫所")],
                           default_unit="sanitation")
    store = open_store(settings)
    store.add_device("box-1", "curve", "sign")
    store.record_heartbeat(Heartbeat(device_id="box-1", sent_at=datetime.now(UTC), agent_version="0.1.0", cameras=[
        CameraHealth(camera_id="cam-east", online=True, detect_fps=2.0, clock="rtcp-sr", clock_skew_s=0.1),
        CameraHealth(camera_id="cam-south", online=True, clock="stream", clock_skew_s=-29.97),
        CameraHealth(camera_id="cam-west", online=False, last_error="rtsp: connection refused"),
        CameraHealth(camera_id="cam-north", online=False, stalled=True, frame_age_s=7.2,
                     last_error="stalled: no frame for 5.0 s"),
    ]))
    with serve_app(create_app(settings, store=store, background=False)) as base:
        h = Hub(base=base, store=store, data=data)
        for role in (Role.REVIEWER, Role.READER, Role.ADMIN, Role.SENSOR):
            h.tokens[role.value] = create_token(store, f"{role.value}-web", role)[1]
        yield h
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def open_token_form(page: Page) -> None:
    """People sign in with a password; tokens (machines, temporary access) sit behind a disclosure."""
    expect(page.locator("#login")).to_be_visible()
    if not page.locator("#token").is_visible():
        page.click("#token-login summary")


def sign_in(page: Page, hub: Hub, role: str) -> None:
    page.goto(hub.base + "/")
    open_token_form(page)
    page.fill("#token", hub.tokens[role])
    page.click("#login-form button[type=submit]")
    expect(page.locator("#whoami")).to_contain_text(f"{role}-web")


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)


def natural_width(page: Page, selector: str) -> int:
    """The loaded image's natural width, read in the same evaluation that finds it loaded: a live refresh
    (SSE) may re-render the element between a wait and a second lookup."""
    found = page.wait_for_function(
        "s => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0 && i.naturalWidth }",
        arg=selector)
    return int(found.json_value())


# ---- tests -----------------------------------------------------------------------------------------------


def test_page_is_public_and_locked_down(hub: Hub) -> None:
    r = httpx.get(hub.base + "/")
    assert r.status_code == 200 and "CityEye" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert httpx.get(hub.base + "/app.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(hub.base + "/cases").status_code == 401  # data still needs a token
    assert httpx.get(hub.base + "/no-such-page").status_code == 404


def test_login_refuses_bad_and_sensor_tokens(page: Page, hub: Hub) -> None:
    page.goto(hub.base + "/")
    open_token_form(page)
    page.fill("#token", "cey_not-a-token")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("令牌无效或已吊销。")
    page.fill("#token", hub.tokens["sensor"])
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("传感器令牌")
    expect(page.locator("#app")).to_be_hidden()


def test_reviewer_queue_detail_and_confirm(page: Page, hub: Hub) -> None:
    filed = add_case(hub.store, hub.data, "cam-east")
    ours = add_case(hub.store, hub.data, "cam-west")
    assert hub.api("admin", "POST", f"/cases/{filed}/confirm").status_code == 200  # not pending any more
    sign_in(page, hub, "reviewer")

    rows = page.locator("#queue tr.case-row")
    expect(rows.first).to_be_visible()
    badges = page.locator("#queue tr.case-row .badge[data-status]")
    statuses = badges.evaluate_all("els => els.map(e => e.dataset.status)")
    assert "pending_review" in statuses and "filed" in statuses
    first_other = next(i for i, s in enumerate(statuses) if s != "pending_review")
    assert all(s == "pending_review" for s in statuses[:first_other]), f"pending review must come first: {statuses}"
    assert "pending_review" not in statuses[first_other:]
    row = page.locator(f'#queue tr[data-case-id="{ours}"]')
    expect(row).to_contain_text("机动车乱停放")  # class names come from /classes: Chinese and English
    expect(row).to_contain_text("cam-west / np-1")
    assert natural_width(page, f'#queue tr[data-case-id="{ours}"] img.thumb') == 192  # the case's own crop
    shot(page, "queue")

    row.click()
    expect(page.locator(".detail-head .badge[data-status]")).to_have_attribute("data-status", "pending_review")
    assert natural_width(page, "#main-image") == 640
    # the edge's H.264/MP4 clip plays inline: the browser decoded its metadata from the blob
    page.wait_for_function("() => { const v = document.querySelector('#clip-video');"
                           " return v && v.readyState >= 1 && v.duration > 0; }", timeout=10_000)
    detail = hub.api("reviewer", "GET", f"/cases/{ours}").json()
    shas = [m["sha256"] for e in detail["events"] for m in e["media"]]
    expect(page.locator("#evidence")).to_contain_text(shas[0])
    buttons = page.locator("#actions button[data-action]").all()
    assert {b.get_attribute("data-action") for b in buttons} == {"confirm", "void"}
    shot(page, "case-detail")

    page.keyboard.press("c")  # the review seat's shortcut for confirm: files the case and moves on
    expect(page).not_to_have_url(f"{hub.base}/#/case/{ours}")
    assert hub.api("reviewer", "GET", f"/cases/{ours}").json()["status"] == "filed"
    page.goto(f"{hub.base}/#/case/{ours}")
    expect(page.locator(".detail-head .badge[data-status]")).to_have_attribute("data-status", "filed")
    expect(page.locator('#timeline li[data-action="confirm"]')).to_contain_text("立案")
    assert page.locator("#actions button[data-action]").count() == 0  # a reviewer doesn't dispatch


def test_void_takes_a_preset_reason_or_a_typed_one(page: Page, hub: Hub) -> None:
    case_id = add_case(hub.store, hub.data, "cam-void", class_id="exposed_garbage", zone="z-void")
    sign_in(page, hub, "reviewer")
    page.goto(f"{hub.base}/#/case/{case_id}")
    page.click('#actions button[data-action="void"]')
    page.click("#form-void .chips button[data-reason=other]")  # "other" needs a typed reason: nothing is sent
    expect(page.locator("#form-void textarea")).to_be_focused()
    assert hub.api("reviewer", "GET", f"/cases/{case_id}").json()["status"] == "pending_review"

    page.fill("#form-void textarea", "bins out on collection day")
    page.click("#form-void .chips button >> nth=0")  # a canned reason, with the typed note after it
    expect(page).not_to_have_url(f"{hub.base}/#/case/{case_id}")
    case = hub.api("reviewer", "GET", f"/cases/{case_id}").json()
    assert case["status"] == "void" and case["timeline"][-1]["note"] == "误报：bins out on collection day"


def test_conflict_from_a_stale_page_is_shown(page: Page, hub: Hub) -> None:
    case_id = add_case(hub.store, hub.data, "cam-stale", zone="z-stale")
    sign_in(page, hub, "reviewer")
    page.goto(f"{hub.base}/#/case/{case_id}")
    # The live stream reloads a case on screen unless a form is open: open one, then someone else acts.
    page.click('#actions button[data-action="void"]')
    page.fill("#form-void textarea", "duplicate")
    other = hub.api("admin", "POST", f"/cases/{case_id}/void", json={"note": "someone else was faster"})
    assert other.status_code == 200
    page.press("#form-void textarea", "Enter")
    alert = page.locator("#action-error .alert")
    expect(alert).to_contain_text("409 · 与案件当前状态冲突")
    expect(alert).to_contain_text("案件当前为已作废，不能作废")  # the hub's refusal, in the page's language


def test_reader_sees_no_action_buttons(page: Page, hub: Hub) -> None:
    case_id = add_case(hub.store, hub.data, "cam-read", zone="z-read")
    sign_in(page, hub, "reader")
    page.goto(f"{hub.base}/#/case/{case_id}")
    expect(page.locator("#no-actions")).to_have_text("只读用户对待审核的案件无可执行操作。")
    assert page.locator("#actions button[data-action]").count() == 0
    assert natural_width(page, "#main-image") == 640
    page.keyboard.press("c")  # the shortcut does nothing but say why
    expect(page.locator(".toast.error")).to_contain_text("此处不能立案")
    assert hub.api("reader", "GET", f"/cases/{case_id}").json()["status"] == "pending_review"


def test_new_case_appears_live(page: Page, hub: Hub) -> None:
    sign_in(page, hub, "reviewer")
    expect(page.locator("#live")).to_have_class("live on")
    expect(page.locator("#queue tr.case-row").first).to_be_visible()
    before = page.locator("#queue tr.case-row").count()
    case_id = add_case(hub.store, hub.data, "cam-live", zone="z-live")
    expect(page.locator(f'#queue tr[data-case-id="{case_id}"]')).to_be_visible(timeout=10_000)
    assert page.locator("#queue tr.case-row").count() == before + 1
    expect(page.locator("#toasts")).to_contain_text(case_id)


def test_dispatch_start_and_handle_with_a_photo(page: Page, hub: Hub, tmp_path: Path) -> None:
    case_id = add_case(hub.store, hub.data, "cam-east", zone="z-handle")
    assert hub.api("reviewer", "POST", f"/cases/{case_id}/confirm").status_code == 200
    sign_in(page, hub, "admin")
    page.goto(f"{hub.base}/#/case/{case_id}")
    page.click('#actions button[data-action="dispatch"]')
    page.select_option("#form-dispatch select[name=unit]", "district-east")
    page.click("#form-dispatch button[type=submit]")
    expect(page.locator(".detail-head .badge[data-status]")).to_have_attribute("data-status", "dispatched")
    page.click('#actions button[data-action="start"]')
    expect(page.locator(".detail-head .badge[data-status]")).to_have_attribute("data-status", "in_progress")
    page.click('#actions button[data-action="handle"]')
    page.fill("#form-handle textarea", "vehicle towed")
    photo = tmp_path / "after.jpg"
    photo.write_bytes(_jpeg(_scene(7)))
    page.set_input_files("#form-handle input[type=file]", str(photo))
    page.click("#form-handle button[type=submit]")
    expect(page.locator(".detail-head .badge[data-status]")).to_have_attribute("data-status", "handled")
    case = hub.api("admin", "GET", f"/cases/{case_id}").json()
    assert case["unit"] == "district-east"
    assert case["timeline"][-1]["photo_sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert natural_width(page, "#timeline img.thumb") == 640


def test_stats_show_precision_and_camera_state(page: Page, hub: Hub) -> None:
    a = add_case(hub.store, hub.data, "cam-s1", class_id="bagged_garbage", zone="z-s1")
    b = add_case(hub.store, hub.data, "cam-s2", class_id="bagged_garbage", zone="z-s2")
    c = add_case(hub.store, hub.data, "cam-s3", class_id="bagged_garbage", zone="z-s3")
    void = {"note": "bags out on collection day"}
    for case_id, action, body in ((a, "confirm", {}), (b, "confirm", {}), (c, "void", void)):
        assert hub.api("reviewer", "POST", f"/cases/{case_id}/{action}", json=body).status_code == 200
    sign_in(page, hub, "reader")
    page.click('.tabs a[data-view="stats"]')
    row = page.locator('#per-class tr[data-class-id="bagged_garbage"]')
    expect(row).to_contain_text("打包垃圾")
    expect(row.locator("td.precision")).to_have_text("66.7 %")
    expect(page.locator("#cameras")).to_contain_text("cam-east")
    expect(page.locator("#cameras tr", has_text="cam-east")).to_contain_text("在线")
    expect(page.locator("#cameras tr", has_text="cam-west")).to_contain_text("离线")
    north = page.locator("#cameras tr", has_text="cam-north")
    expect(north).to_contain_text("画面停滞")
    expect(north).to_contain_text("画面延迟 7.2 秒")
    expect(page.locator("#cameras tr", has_text="cam-east")).to_contain_text("帧时间：摄像机时钟（RTCP）")
    south = page.locator("#cameras tr", has_text="cam-south")
    expect(south).to_contain_text("帧时间：码流位置")
    expect(south).to_contain_text("摄像机时钟偏差 30.0 秒")
    expect(page.locator("#devices")).to_contain_text("box-1")
    shot(page, "stats")


def test_stats_show_precision_per_camera_worst_first(page: Page, hub: Hub) -> None:
    # cam-p1 is the badly placed one: two of its three reviewed captures are false street vendors.
    plan = {"cam-p1": [("unlicensed_mobile_vendor", "void"), ("unlicensed_mobile_vendor", "void"),
                       ("illegal_car_parking", "confirm")],
            "cam-p2": [("illegal_car_parking", "confirm"), ("illegal_car_parking", "confirm")]}
    void = {"note": "a parked delivery tricycle, not a vendor"}
    for camera_id, cases in plan.items():
        for n, (class_id, action) in enumerate(cases):
            case_id = add_case(hub.store, hub.data, camera_id, class_id=class_id, zone=f"z-{camera_id}-{n}")
            body = void if action == "void" else {}
            assert hub.api("reviewer", "POST", f"/cases/{case_id}/{action}", json=body).status_code == 200
    sign_in(page, hub, "reader")
    page.click('.tabs a[data-view="stats"]')
    panel = page.locator("section", has=page.locator("#per-camera"))
    expect(panel.locator("h2")).to_contain_text("各摄像头准确率")
    bad = page.locator('#per-camera tr[data-camera-id="cam-p1"]')
    good = page.locator('#per-camera tr[data-camera-id="cam-p2"]')
    vendor = next(c for c in hub.api("reader", "GET", "/classes").json() if c["id"] == "unlicensed_mobile_vendor")
    expect(bad.locator("td.precision")).to_have_text("33.3 %")
    expect(bad.locator("td.most-voided .cls-main")).to_have_text(vendor["name_zh"])
    expect(bad.locator("td.most-voided")).to_contain_text("作废 2 件中占 2 件")
    expect(good.locator("td.precision")).to_have_text("100.0 %")
    ids = page.locator("#per-camera tbody tr").evaluate_all("rows => rows.map(r => r.dataset.cameraId)")
    assert ids.index("cam-p1") < ids.index("cam-p2"), f"worst precision first: {ids}"
    page.locator("#per-camera").scroll_into_view_if_needed()
    shot(page, "stats-per-camera")
    bad.locator("a").click()  # the camera links to its voided cases, the false captures to look at
    expect(page.locator("#queue tr.case-row")).to_have_count(2)


def test_evidence_package_link_downloads_a_package_that_verifies(page: Page, hub: Hub) -> None:
    from protocol.codec import EventMessage, decode, seal_event
    from protocol.manifest import GENESIS_HASH, Signer, generate_signing_key
    from protocol.package import verify_package

    device = f"box-pkg-{secrets.token_hex(3)}"
    secret, public = generate_signing_key()
    hub.store.add_device(device, "curve", public)
    signer = Signer(secret)
    first, media = edge_event(hub.data, camera_id="cam-pkg", zone="z-pkg")
    first = first.model_copy(update={"device_id": device})
    later = first.model_copy(update={"event_id": f"ev-{secrets.token_hex(6)}", "state": ProblemState.UPDATED,
                                     "observed_at": first.observed_at + timedelta(seconds=30)})
    prev, case_ids = GENESIS_HASH, set()
    for seq, event in enumerate((first, later), start=1):
        sealed = seal_event(event, media, signer, seq=seq, prev_manifest_sha256=prev)
        msg = decode(sealed.frames)
        assert isinstance(msg, EventMessage)
        case_ids.add(hub.store.ingest_event(msg.event, media, manifest=bytes(msg.manifest_bytes),
                                            signature=bytes(msg.signature), seq=seq).case_id)
        prev = sealed.manifest_sha256
    (case_id,) = case_ids
    sign_in(page, hub, "reader")
    page.goto(f"{hub.base}/#/case/{case_id}")
    link = page.locator("#evidence-package")
    expect(link).to_contain_text("下载证据包")
    shot(page, "case-evidence-package")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == f"{case_id}-evidence.zip"
    report = verify_package(Path(download.path()).read_bytes())
    assert report.ok, report.lines()
    assert report.case_id == case_id and report.exported_by == "reader:reader-web"
    assert len(report.events) == 2 and "chained to seq 1" in report.events[1].notes
    assert report.keys == {device: public}
