"""The label editor on the case page, in a real browser against a real hub: a reviewer draws a box on
the frame, moves it, picks its label and saves; "nothing here" saves a hard negative; a reader gets no
editor. What the page saved is read back through the API (hub.releases.labels)."""

from __future__ import annotations

import pytest

from tests.hub.web.test_reviewer import Hub, add_case, browser, expect, hub, page, sign_in  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def test_reviewer_draws_moves_and_saves_a_box(page, hub: Hub) -> None:  # noqa: F811
    case_id = add_case(hub.store, hub.data, "cam-east", zone="np-labels")
    sign_in(page, hub, "reviewer")
    page.goto(f"{hub.base}/#/case/{case_id}")
    svg = page.locator("#label-svg")
    expect(svg).to_be_visible()
    page.wait_for_function("() => { const i = document.querySelector('#label-image');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    page.select_option("#label-select", "traffic_cone")
    svg.scroll_into_view_if_needed()  # mouse events reach only what is inside the viewport
    area = svg.bounding_box()
    assert area is not None
    at = lambda fx, fy: (area["x"] + fx * area["width"], area["y"] + fy * area["height"])  # noqa: E731
    page.mouse.move(*at(0.10, 0.20))
    page.mouse.down()
    page.mouse.move(*at(0.20, 0.35), steps=4)
    page.mouse.move(*at(0.30, 0.50), steps=4)
    page.mouse.up()
    expect(page.locator("#label-svg rect")).to_have_count(1)
    page.mouse.move(*at(0.20, 0.35))  # drag the box 0.1 to the right
    page.mouse.down()
    page.mouse.move(*at(0.30, 0.35), steps=5)
    page.mouse.up()
    page.click("#label-save")
    expect(page.locator("#label-status")).to_contain_text("已保存")
    saved = hub.api("reviewer", "GET", f"/cases/{case_id}/labels").json()
    assert saved["source"] == "reviewer" and len(saved["boxes"]) == 1
    (box,) = saved["boxes"]
    assert box["label"] == "traffic_cone"
    assert box["box"] == pytest.approx([0.20, 0.20, 0.40, 0.50], abs=0.02)
    page.click("#label-nothing")
    expect(page.locator("#label-count")).to_contain_text("无目标")
    after = hub.api("reviewer", "GET", f"/cases/{case_id}/labels").json()
    assert after["nothing"] and after["boxes"] == []
    assert page.evaluate("() => [...I18N.missing]") == []


def test_reader_gets_no_editor(page, hub: Hub) -> None:  # noqa: F811
    case_id = add_case(hub.store, hub.data, "cam-east", zone="np-reader")
    sign_in(page, hub, "reader")
    page.goto(f"{hub.base}/#/case/{case_id}")
    expect(page.locator("#main-image")).to_be_visible()
    expect(page.locator("#label-editor")).to_have_count(0)
