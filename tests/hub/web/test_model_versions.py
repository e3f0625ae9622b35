"""Precision per class per model version on the statistics page, in a real browser against a real hub:
cases opened by the model in a camera's YAML are mostly voided, those of a registered release mostly
confirmed (reviewed through the API the page uses); the page shows both versions side by side, in the
bureau's language, and a reader does not get the panel."""

from __future__ import annotations

import hashlib

import pytest

from protocol.messages import ModelInfo
from tests.hub.web.test_reviewer import Hub, browser, edge_event, expect, hub, page, shot, sign_in  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def opened_by(hub: Hub, model: ModelInfo, zone: str) -> str:  # noqa: F811
    event, media = edge_event(hub.data, camera_id="cam-east", zone=zone)
    result = hub.store.ingest_event(event.model_copy(update={"model": model}), media, manifest=b'{"m":1}',
                                    signature=b"s" * 64, seq=1)
    assert result.created and result.case_id
    return result.case_id


def review(hub: Hub, case_id: str, confirm: bool) -> None:  # noqa: F811
    r = (hub.api("reviewer", "POST", f"/cases/{case_id}/confirm") if confirm
         else hub.api("reviewer", "POST", f"/cases/{case_id}/void", json={"note": "no car there"}))
    assert r.status_code == 200, r.text


def test_precision_per_version_shows_the_curve(page, hub: Hub) -> None:  # noqa: F811
    content = b'{"a detector file": "v2"}'
    registered = hub.api("admin", "POST", "/models/releases", data={"name": "parking-v2", "kind": "onnx"},
                         files={"file": ("v2.onnx", content)})
    assert registered.status_code == 201, registered.text
    v2 = registered.json()
    old = ModelInfo(name="coco-nanodet", sha256="a" * 64)
    new = ModelInfo(name="parking-v2", sha256=hashlib.sha256(content).hexdigest())
    for i, confirm in enumerate([True, False, False, False, False]):
        review(hub, opened_by(hub, old, f"mv-old-{i}"), confirm)
    for i, confirm in enumerate([True, True, True, True, False]):
        review(hub, opened_by(hub, new, f"mv-new-{i}"), confirm)
    opened_by(hub, new, "mv-new-pending")

    stats = hub.api("reviewer", "GET", "/models/stats").json()
    figures = {(r["name"], r["class_id"]): r for r in stats}
    assert figures[("coco-nanodet", "illegal_car_parking")]["precision"] == pytest.approx(0.2)
    assert figures[("parking-v2", "illegal_car_parking")]["precision"] == pytest.approx(0.8)
    assert figures[("parking-v2", "illegal_car_parking")]["pending"] == 1

    sign_in(page, hub, "reviewer")
    page.goto(f"{hub.base}/#/stats")
    table = page.locator("#model-versions-table")
    expect(table).to_be_visible()
    expect(page.locator("#model-versions h2")).to_have_text("各模型版本的分类准确率")
    heads = table.locator("thead th")
    expect(heads).to_have_text(["类别", "coco-nanodet（未登记）", f"parking-v2 #{v2['release_id']}"])
    row = table.locator("tr[data-class-id='illegal_car_parking'] td.precision")
    expect(row.nth(0)).to_contain_text("20.0 %（1/5）")
    expect(row.nth(1)).to_contain_text("80.0 %（4/5）")
    page.locator("#model-versions").scroll_into_view_if_needed()
    shot(page, "model-versions")
    assert page.evaluate("() => [...I18N.missing]") == []


def test_a_reader_gets_no_version_panel(page, hub: Hub) -> None:  # noqa: F811
    assert hub.api("reader", "GET", "/models/stats").status_code == 403
    sign_in(page, hub, "reader")
    page.goto(f"{hub.base}/#/stats")
    expect(page.locator("#per-camera")).to_be_visible()
    expect(page.locator("#model-versions")).to_have_count(0)
