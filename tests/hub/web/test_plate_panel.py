"""The reviewer page's licence-plate panel in a real browser: the plate crop large beside its text, the
timed stills, "plate unreadable", the masked plate for the reader role, and an audited correction."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from playwright.sync_api import Page, expect

from hub.storage.store import Store
from protocol.fonts.text import draw_text
from protocol.messages import MediaKind, MediaRef, PlateInfo, ProblemEvent
from protocol.plates import PlateColour
from tests.hub.web import test_reviewer as web
from tests.hub.web.test_reviewer import Hub, _jpeg, _scene, edge_event, natural_width, shot, sign_in

# The reviewer page tests' served hub and browser, for this module too.
hub, browser, page = web.hub, web.browser, web.page


def _plate_image(text: str) -> np.ndarray:
    image = np.full((120, 420, 3), (160, 70, 20), np.uint8)  # a blue plate, upscaled as the edge sends it
    draw_text(image, text, (20, 20), 72, color=(255, 255, 255))
    return image


def add_parking_case(store: Store, tmp: Path, plate: str | None, camera_id: str) -> str:
    event, media = edge_event(tmp, camera_id=camera_id)
    extra = {f"still_{i}.jpg": (MediaKind.STILL, _jpeg(_scene(i))) for i in (1, 2, 3)}
    if plate:
        extra["plate.jpg"] = (MediaKind.PLATE, _jpeg(_plate_image(plate)))
    refs = [*event.media, *(MediaRef(name=n, kind=k, content_type="image/jpeg", size=len(b),
                                     sha256=hashlib.sha256(b).hexdigest()) for n, (k, b) in extra.items())]
    info = PlateInfo(text=plate, colour=PlateColour.BLUE if plate else None, score=0.93 if plate else 0.0,
                     frames=3 if plate else 0, attempts=4)
    event = ProblemEvent.model_validate({**event.model_dump(), "media": [r.model_dump() for r in refs],
                                         "plate": info.model_dump()})
    media.update({n: b for n, (_, b) in extra.items()})
    result = store.ingest_event(event, media, manifest=b'{"m":1}', signature=b"s" * 64, seq=1)
    assert result.created and result.case_id
    return result.case_id


def test_plate_panel_reviewer_corrects_a_misread(page: Page, hub: Hub, tmp_path: Path) -> None:
    case_id = add_parking_case(hub.store, tmp_path, "苏E·D51714", "cam-plate-1")
    sign_in(page, hub, "reviewer")
    page.goto(f"{hub.base}/#/case/{case_id}")
    expect(page.locator("#plate-text")).to_have_text("苏E·D51714")
    expect(page.locator("#plate-facts")).to_contain_text("蓝牌")
    assert natural_width(page, "#plate-panel img.plate-crop") == 420  # the crop at full size, not a thumbnail
    expect(page.locator("#plate-stills figure")).to_have_count(3)
    shot(page, "plate-panel")
    page.fill("#plate-input", "苏E·D51712")
    page.fill("#plate-note", "4 是 2")
    page.click("#plate-save")
    expect(page.locator("#plate-text")).to_have_text("苏E·D51712")
    expect(page.locator("#timeline")).to_contain_text("苏E·D51714 → 苏E·D51712: 4 是 2")
    assert hub.api("reviewer", "GET", f"/cases/{case_id}").json()["plate"]["corrected"] is True


def test_plate_panel_masked_for_readers_and_unreadable_said_so(page: Page, hub: Hub, tmp_path: Path) -> None:
    read = add_parking_case(hub.store, tmp_path, "皖A·73C39", "cam-plate-2")
    unreadable = add_parking_case(hub.store, tmp_path, None, "cam-plate-3")
    sign_in(page, hub, "reader")
    page.goto(f"{hub.base}/#/case/{read}")
    expect(page.locator("#plate-text")).to_have_text("皖A·7**39")
    expect(page.locator("#plate-input")).to_have_count(0)  # readers cannot correct
    expect(page.locator("#plate-panel img.plate-crop")).to_have_count(0)  # nor see the plate up close
    expect(page.locator("#plate-stills figure")).to_have_count(2)  # the wide stills, not the close-up
    media = {m["name"]: m for e in hub.api("reviewer", "GET", f"/cases/{read}").json()["events"] for m in e["media"]}
    assert hub.api("reader", "GET", media["plate.jpg"]["url"]).status_code == 403
    assert hub.api("reviewer", "GET", media["plate.jpg"]["url"]).status_code == 200
    assert hub.api("reader", "GET", media["still_1.jpg"]["url"]).status_code == 200
    assert hub.api("reader", "GET", media["still_3.jpg"]["url"]).status_code == 403  # the close-up shows the plate
    assert hub.api("reviewer", "GET", media["still_3.jpg"]["url"]).status_code == 200
    page.goto(f"{hub.base}/#/case/{unreadable}")
    expect(page.locator("#plate-text")).to_have_text("车牌无法识别")
    expect(page.locator("#plate-stills figure")).to_have_count(3)
