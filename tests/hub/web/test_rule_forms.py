"""The rule and schedule forms of the camera page in Debian's chromium, without an agent (the hub checks
with the agent's own validation, as `cityeye hub serve` does): a new scene-change rule for a class from the
catalogue gets the change-detection params as inputs; its schedule is filled from the working calendar
(official holidays and make-up working days), with a holiday window; a wrong time, then a date that is
both a holiday and a working day, are refused with their inputs marked; the fixed form shows its diff and
saves; every string is in the catalogue, in Chinese and in English."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, expect

from cityeye.commands.demo import CAMERA_ID, DEMO_CAMERA
from edge_agent.change.params import ChangeParams
from edge_agent.config import parse_camera_config
from edge_agent.managed_config import check_for_hub, config_body
from hub.app import create_app, open_store
from hub.auth.tokens import create_token
from hub.cases.lifecycle import Role
from hub.fleet import check, configs
from hub.settings import HubSettings
from protocol.push import ManagedBy, PushKind, PushResult
from tests.hub.web.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: F401  (skips without Chromium)
from tests.hub.web.district_pages import chromium, no_missing_messages, serve, sign_in

pytestmark = pytest.mark.timeout(120)
expect.set_options(timeout=15_000)
INVALID = re.compile(r"\bfield-invalid\b")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, str]]:
    check.use(check_for_hub, change_params=ChangeParams)
    settings = HubSettings(data_dir=tmp_path / "hub", zmq_bind=None)
    store = open_store(settings)
    demo = parse_camera_config({**DEMO_CAMERA, "source": "vtest.avi"})
    configs.record_result(store, PushResult(device_id="demo-box", kind=PushKind.CAMERA_CONFIG, target=CAMERA_ID,
                                            version=0, accepted=True, report=True, managed_by=ManagedBy.HUB,
                                            current=config_body(demo)))
    base, stop = serve(create_app(settings, store=store, background=False))
    try:
        yield base, create_token(store, "chief", Role.ADMIN)[1]
    finally:
        stop()
        store.close()
        check.use(None)


def change(field: Locator, value: str) -> None:
    field.fill(value)
    field.dispatch_event("change")


def test_a_change_rule_with_a_calendar_schedule_through_the_forms(hub: tuple[str, str]) -> None:
    base, token = hub
    auth = {"Authorization": f"Bearer {token}"}
    year = date.today().year
    cal = httpx.get(f"{base}/calendar?year={year}", headers=auth, timeout=10).json()
    official_off = sorted(d["date"] for d in cal["official"] if d["kind"] == "off")
    official_work = sorted(d["date"] for d in cal["official"] if d["kind"] == "work")
    assert official_off and official_work, "the holidays package gives China's days off and make-up days"
    with chromium() as browser:
        page = browser.new_context(locale="zh-CN", viewport={"width": 1300, "height": 1000}).new_page()
        page.goto(base + "/")
        sign_in(page, token)
        page.goto(f"{base}/#/camera/{CAMERA_ID}")
        expect(page.locator("fieldset.rule")).to_have_count(2)

        # a new rule: exposed garbage, by scene change (no detector label), on the plaza
        page.click("#new-rule")
        rule = page.locator("fieldset.rule[data-rule='2']")
        rule.locator(".rule-class").select_option("exposed_garbage")
        expect(rule.locator(".rule-class option:checked")).to_have_text("暴露垃圾（exposed_garbage）")
        rule.locator(".rule-source").select_option("change")
        for name in ("min_dwell_s", "clear_after_s", "min_area_frac"):
            expect(rule.locator(f".param-input[data-param='{name}']")).to_be_attached()
        expect(rule.locator(".param-input[data-param='stationary_iou']")).to_have_count(0)  # a detector knob
        expect(rule.locator(".param-input[data-param='min_dwell_s']")).to_have_attribute("placeholder", "600")
        change(rule.locator(".param-input[data-param='min_area_frac']"), "0.02")
        rule.locator(".rule-zone[value='np_top_right']").uncheck()
        rule.locator(".rule-zone[value='plaza']").check()

        # its schedule: daytime on weekdays, holidays and make-up days from the working calendar
        rule.locator(".sched-on").select_option("scheduled")
        rule.locator(".sched-fill-calendar").click()
        expect(rule.locator(f".sched-holidays li[data-date='{official_off[0]}']")).to_be_attached()
        expect(rule.locator(".sched-workdays li")).to_have_count(len(official_work))
        rule.locator(".sched-workday-as").select_option("fri")
        rule.locator(".sched-add-holiday-window").click()
        hw = rule.locator(".sched-holiday-window").first
        change(hw.locator(".sched-start"), "09:00")
        change(hw.locator(".sched-end"), "9:60")
        rule.locator(".sched-new-workdays").fill(official_off[0])  # a holiday made a working day as well
        rule.locator(".sched-add-workdays").click()
        page.click("#cfg-check")
        expect(page.locator(".issues li[data-path='rules[2].schedule.holiday_windows[0].end']")).to_be_visible()
        expect(hw.locator(".sched-end")).to_have_class(INVALID)
        change(hw.locator(".sched-end"), "12:00")  # fixed; the schedule as a whole is checked next
        page.click("#cfg-check")
        expect(page.locator(".issues li[data-path='rules[2].schedule']")).to_contain_text(official_off[0])
        expect(rule.locator("fieldset.schedule")).to_have_class(INVALID)
        expect(hw.locator(".sched-end")).not_to_have_class(INVALID)

        # fixed: the diff names the new rule, and it is saved as the form shows it
        rule.locator(f".sched-workdays li[data-date='{official_off[0]}'] button").click()
        page.click("#cfg-save")
        expect(page.locator(".diff tr[data-path='rules[2]'] td.new")).to_contain_text('"source":"change"')
        expect(page.locator(".field-invalid")).to_have_count(0)
        page.click("#cfg-confirm")
        expect(page.locator(".saved[data-version='1']")).to_be_visible()
        no_missing_messages(page)
        page.click("#lang")
        page.goto(f"{base}/#/camera/{CAMERA_ID}")
        expect(page.locator("fieldset.rule[data-rule='2'] .rule-class option:checked")).to_have_text(
            "exposed garbage (exposed_garbage)")
        no_missing_messages(page)

    saved: dict[str, Any] = httpx.get(f"{base}/cameras/{CAMERA_ID}/config", headers=auth,
                                      timeout=10).json()["latest"]["body"]["rules"][2]
    assert saved["class_id"] == "exposed_garbage" and saved["source"] == "change" and saved["zones"] == ["plaza"]
    assert saved["params"] == {"min_area_frac": 0.02}
    schedule = saved["schedule"]
    assert set(official_off) <= set(schedule["holidays"]) and schedule["workdays"] == official_work
    assert schedule["holiday_windows"] == [{"start": "09:00", "end": "12:00"}] and schedule["workday_as"] == "fri"
