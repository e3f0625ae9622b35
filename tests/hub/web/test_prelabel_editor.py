"""The labelling queue in a real browser: a vtest.avi frame queued with coco-nanodet's own boxes (run here,
on the real frame) opens in the box editor with those boxes drawn as pre-labels; the reviewer deletes
one, saves, and the API reads back the corrected boxes."""

from __future__ import annotations

import json

import cv2
import pytest

from edge_agent.fewshot import load_detector
from models.prelabel import proposals
from tests.conftest import shared_file
from tests.hub.web.test_reviewer import Hub, browser, expect, hub, page, shot, sign_in  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def test_reviewer_corrects_the_detectors_prelabels(page, hub: Hub) -> None:  # noqa: F811
    capture = cv2.VideoCapture(str(shared_file("video/vtest.avi")))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 200)
    ok, frame = capture.read()
    capture.release()
    assert ok
    detector, _ = load_detector("coco-nanodet")
    boxes = proposals(detector, frame, labels={"person"})
    assert len(boxes) >= 3, boxes  # walkers
    jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
    queued = hub.api("reviewer", "POST", "/labels/frames", files={"image": ("f.jpg", jpeg, "image/jpeg")},
                     data={"camera_id": "vtest", "taken_at": "2026-12-07T09:00:20+08:00",
                           "proposals": json.dumps(boxes),
                           "proposed_by": json.dumps({"name": "coco-nanodet", "sha256": detector.manifest.sha256})})
    assert queued.status_code == 201, queued.text
    frame_id = queued.json()["frame_id"]

    sign_in(page, hub, "reviewer")
    page.click("#labelling-tab")
    page.click(f"#sampled-frames tr[data-frame-id='{frame_id}'] a")
    svg = page.locator("#label-svg")
    expect(svg.locator("rect")).to_have_count(len(boxes))
    expect(page.locator("#label-status")).to_contain_text("coco-nanodet 的预标注")
    page.locator("#label-editor").scroll_into_view_if_needed()
    shot(page, "prelabel-editor")
    page.wait_for_function("() => { const i = document.querySelector('#label-image');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    svg.scroll_into_view_if_needed()
    area = svg.bounding_box()
    assert area is not None
    x1, y1, x2, y2 = boxes[0]["box"]  # the detector's best box: a false one, say
    page.mouse.click(area["x"] + (x1 + x2) / 2 * area["width"], area["y"] + (y1 + y2) / 2 * area["height"])
    page.click("#label-delete")
    expect(svg.locator("rect")).to_have_count(len(boxes) - 1)
    page.click("#label-save")
    expect(page.locator("#label-status")).to_contain_text("已保存")
    saved = hub.api("reviewer", "GET", f"/labels/frames/{frame_id}").json()
    assert saved["source"] == "reviewer" and len(saved["boxes"]) == len(boxes) - 1
    assert boxes[0]["box"] not in [b["box"] for b in saved["boxes"]]
    assert page.evaluate("() => [...I18N.missing]") == []
