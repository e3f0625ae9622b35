"""The hub's refusals read in Chinese: every error code the hub can return (hub.errors.REGISTRY) has zh-CN
and English text in the page's catalogue, and real refusals in Chromium (zh-CN, no system CJK font) show
no English: a conflict with another reviewer, a field the hub refuses, a role without the right, a code
the page does not know, and a session ended by the idle limit (the page then returns where it was).
Labels in the label editor and the admin tab read by their Chinese names.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from cityeye.commands.demo import CAMERA_ID, DEMO_CAMERA
from edge_agent.config import parse_camera_config
from edge_agent.managed_config import config_body
from hub import errors
from hub.app import create_app, open_store
from hub.auth import users
from hub.auth.config import AccountPolicy
from hub.auth.tokens import create_token
from hub.cases.lifecycle import Action, CaseStatus, Role
from hub.fleet import configs
from hub.settings import HubSettings, UnitConfig
from protocol.catalog import ZoneKind
from protocol.messages import MediaKind
from protocol.push import ManagedBy, PushKind, PushResult
from tests.hub.served import serve_app
from tests.hub.web.test_catalogue import WEB, catalogue
from tests.hub.web.test_desk import PASSWORD, visible_latin_words, zh_cn_browser, zh_cn_page
from tests.hub.web.test_plate_panel import add_parking_case
from tests.hub.web.test_reviewer import add_case, shot

HUB = Path(__file__).resolve().parents[3] / "hub"
IDLE_MIN = 0.1  # 6 s: the idle hub's limit, so the test sees a session end
POLICY = AccountPolicy(password_scrypt_n=2**12, sign_in_per_minute=100)


def _text(lang: str, key: str) -> str:
    source = (WEB / "i18n.js").read_text(encoding="utf-8")
    start = source.index('\n  "zh-CN": {') if lang == "zh-CN" else source.index("\n  en: {")
    found = re.search(rf'^\s{{4}}"{re.escape(key)}": "((?:[^"\\]|\\.)*)",?$', source[start:], re.M)
    assert found, f"{lang}:{key} missing"
    return found.group(1)


def test_every_refusal_code_of_the_hub_has_chinese_and_english_text() -> None:
    keys = catalogue()
    assert len(errors.REGISTRY) > 40
    for lang in ("zh-CN", "en"):
        missing = {f"code.{name}" for name in errors.REGISTRY} - keys[lang]
        assert not missing, f"{lang}: codes without text: {sorted(missing)}"
    for code in errors.REGISTRY.values():  # the text uses only what the code carries
        for lang in ("zh-CN", "en"):
            used = set(re.findall(r"\{(\w+)\}", _text(lang, f"code.{code.name}")))
            assert used <= set(code.params), f"{lang}:code.{code.name} uses {used - set(code.params)}"
        assert re.search(r"[\u4e00-\u9fff]", _text("zh-CN", f"code.{code.name}")), code.name


def test_every_value_the_hub_sends_as_an_enum_has_text() -> None:
    """Statuses, actions, roles and media kinds reach the page as ids; each needs its words."""
    keys = catalogue()
    wanted = ({f"status.{s.value}" for s in CaseStatus} | {f"action.{a.value}" for a in Action}
              | {f"role.{r.value}" for r in Role} | {f"media.kind.{k.value}" for k in MediaKind}
              | {f"zone_kind.{k.value}" for k in ZoneKind})
    for lang in ("zh-CN", "en"):
        assert wanted - keys[lang] == set(), lang


def test_the_hub_refuses_only_with_registered_codes() -> None:
    """No route or service raises a bare HTTPException (its answer would carry no code), and every Refused
    names a code of the registry; Open311 keeps GeoReport's own error shape."""
    refusing = ("Refused", "TransitionError", "IllegalTransition", "TransitionForbidden", "TransitionInputError")
    bare, unregistered = [], []
    for path in sorted(HUB.rglob("*.py")):
        if path.name == "open311.py" and path.parent.name == "api":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        passed_on: set[int] = set()  # calls passing on a helper's parameter typed as a registered code
        for f in ast.walk(tree):
            if isinstance(f, ast.FunctionDef):
                typed = {a.arg for a in f.args.args + f.args.kwonlyargs
                         if a.annotation is not None and ast.unparse(a.annotation) in ("errors.Code", "Code")}
                passed_on |= {id(c) for c in ast.walk(f) if isinstance(c, ast.Call) and c.args
                              and isinstance(c.args[0], ast.Name) and c.args[0].id in typed}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            where = f"{path.relative_to(HUB)}:{node.lineno}"
            if name == "HTTPException":
                bare.append(where)
            if name in refusing and node.args and id(node) not in passed_on:
                first = node.args[0]
                code = first.attr if isinstance(first, ast.Attribute) else getattr(first, "id", "")
                if not isinstance(getattr(errors, code, None), errors.Code):
                    unregistered.append(f"{where} {code}")
    assert not bare, f"HTTPException raised without a code: {bare}"
    assert not unregistered, f"refusals naming no registered code: {unregistered}"


@dataclass
class Hubs:
    base: str  # live updates slow: a page stays as loaded while another reviewer acts
    idle_base: str  # sessions end after IDLE_MIN minutes without use
    store: Any
    data: Path
    admin_token: str

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.base + path, headers={"Authorization": f"Bearer {self.admin_token}"},
                             timeout=15, **kw)


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hubs]:
    data = Path(tmp_path_factory.mktemp("codes"))
    settings = HubSettings(data_dir=data, zmq_bind=None, sse_poll_s=60, accounts=POLICY,
                           units=[UnitConfig(id="dongcheng", name="东城中队", cameras=["cam-codes"])],
                           default_unit="dongcheng")
    idle = settings.model_copy(update={"sse_poll_s": 0.2, "accounts": POLICY.model_copy(
        update={"session_idle_minutes": IDLE_MIN})})
    store = open_store(settings)
    for name, role in (("qian.li", Role.REVIEWER), ("zhao.pai", Role.DISPATCHER), ("wang.guan", Role.ADMIN)):
        users.add_user(store, name, role, PASSWORD, POLICY)
    token = create_token(store, "codes-admin", Role.ADMIN)[1]
    demo = parse_camera_config({**DEMO_CAMERA, "source": "vtest.avi"})  # a camera whose agent reported its config
    configs.record_result(store, PushResult(device_id="demo-box", kind=PushKind.CAMERA_CONFIG, target=CAMERA_ID,
                                            version=0, accepted=True, report=True, managed_by=ManagedBy.HUB,
                                            current=config_body(demo)))
    try:
        with serve_app(create_app(settings, store=store, background=False)) as base, \
                serve_app(create_app(idle, store=store, background=False)) as idle_base:
            yield Hubs(base, idle_base, store, data, token)
    finally:
        store.close()


def sign_in(page: Page, name: str) -> None:
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("#password-form button[type=submit]")
    expect(page.locator("#whoami")).to_contain_text(name)


def sign_out(page: Page) -> None:
    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()


def no_english(page: Page, ids: set[str], where: str) -> None:
    leak = visible_latin_words(page, ids)
    if leak:  # the lines that hold it, to find where it came from
        text = page.evaluate("() => document.body.innerText")
        lines = [line for line in text.splitlines() if any(w in line for w in leak)]
        raise AssertionError(f"English {where}: {sorted(leak)} in {lines}")


def test_refusals_read_in_chinese_and_an_idle_session_returns_where_it_was(hubs: Hubs, tmp_path: Path) -> None:
    stale = add_case(hubs.store, hubs.data, "cam-codes", zone="z-1")
    plate_case = add_parking_case(hubs.store, hubs.data, "苏E·D51714", "cam-codes-2")
    idle_case = add_case(hubs.store, hubs.data, "cam-codes", zone="z-3", class_id="exposed_garbage")
    ids = {"Asia/Shanghai", "cam-codes", "cam-codes-2", "z-1", "z-3", "qian.li", "zhao.pai", "wang.guan",
           "codes-admin", "box-1", "np-1", stale, plate_case, idle_case, "cone_stack"}
    ids |= {"cityeye hub user add", "passwd", "disable", "cityeye hub token create"}  # commands the admin tab names
    ids |= {x["id"] for x in hubs.api("GET", "/labels").json()}  # the label editor's hints are the model's ids
    for case_id in (stale, plate_case, idle_case):
        shown = hubs.api("GET", f"/cases/{case_id}").json()
        ids |= {x["actor"] for x in shown["timeline"]}
        ids |= {m["sha256"] for e in shown["events"] for m in e["media"]} | {e["event_id"] for e in shown["events"]}
    with sync_playwright() as p:
        browser = zh_cn_browser(p, tmp_path)
        js_errors: list[str] = []
        context, page = zh_cn_page(browser, js_errors)

        # -- conflict: another reviewer confirmed the case while this page showed it -----------------------
        page.goto(f"{hubs.base}/#/case/{stale}")
        sign_in(page, "qian.li")
        expect(page.locator(".detail-head .case-id")).to_have_text(stale)
        assert hubs.api("POST", f"/cases/{stale}/confirm", json={}).status_code == 200
        ids |= {x["actor"] for x in hubs.api("GET", f"/cases/{stale}").json()["timeline"]}  # ids: who acted
        page.keyboard.press("c")
        expect(page.locator("#action-error")).to_contain_text("案件当前为已立案，不能立案")
        expect(page.locator("#action-error details")).to_have_count(0)  # the hub's English: admins only
        no_english(page, ids, "after a conflict")

        # -- a field the hub refuses is named in Chinese ------------------------------------------------
        page.goto(f"{hubs.base}/#/case/{plate_case}")
        page.fill("#plate-input", "苏")
        page.click("#plate-save")
        expect(page.locator(".toast.error")).to_contain_text("“车牌”填写有误")
        no_english(page, ids, "after a refused field")

        # -- the label editor names labels in Chinese, the id after it as a hint ---------------------------
        expect(page.locator("#label-select option[value=car]")).to_have_text("汽车（car）")
        shot(page, "codes-labels")

        # -- a code this page does not know: a generic Chinese message, never the hub's English ----------------
        unknown = page.evaluate("""() => { const e = new ApiError(418, { code: "teapot_brewing",
            detail: "I'm a teapot", params: {} }); return [e.message, errorDetails(e) === null]; }""")
        assert unknown[0].startswith("中心拒绝了此操作（418）") and unknown[1], unknown
        assert not re.search(r"[A-Za-z]{2}", unknown[0])
        crashed = page.evaluate("() => new ApiError(500, { detail: 'Internal Server Error' }).message")
        assert crashed.startswith("中心出错（500）"), crashed
        sign_out(page)

        # -- a role without the right --------------------------------------------------------------------
        page.goto(f"{hubs.base}/#/admin")
        sign_in(page, "zhao.pai")
        expect(page.locator("#view .alert")).to_contain_text("派遣员无权进行此操作")
        no_english(page, ids, "after a refused role")
        sign_out(page)

        # -- an admin adds a label with its Chinese name; refusals show the hub's detail folded -------------
        page.goto(f"{hubs.base}/#/admin")
        sign_in(page, "wang.guan")
        page.fill("#new-label-id", "cone_stack")
        page.fill("#new-label-zh", "锥桶堆")
        page.click("#new-label button[type=submit]")
        expect(page.locator('#admin-labels tr[data-label="cone_stack"]')).to_contain_text("锥桶堆")
        no_english(page, ids | {"cone stack"}, "on the admin tab")  # the English name an admin manages
        assert {"id": "cone_stack", "name_zh": "锥桶堆", "name_en": "cone stack", "source": "admin"} in \
            hubs.api("GET", "/labels").json()
        page.goto(f"{hubs.base}/#/case/{stale}")
        expect(page.locator("#label-select option[value=cone_stack]")).to_have_text("锥桶堆（cone_stack）")
        page.evaluate("showActionError(new ApiError(409, { code: 'teapot_brewing', detail: 'hub says no' }))")
        expect(page.locator("#action-error details summary")).to_have_text("技术详情")
        expect(page.locator("#action-error details code")).to_be_hidden()
        no_english(page, ids, "with the admin's folded detail")

        # -- a stale config version: someone saved the camera's config while this page edited it -----------
        page.goto(f"{hubs.base}/#/camera/{CAMERA_ID}")
        dwell = page.locator("fieldset.rule[data-rule='0'] .param-input[data-param='min_dwell_s']")
        dwell.fill("45")
        dwell.dispatch_event("change")
        page.click("#cfg-save")
        expect(page.locator("#cfg-confirm")).to_be_visible()
        latest = hubs.api("GET", f"/cameras/{CAMERA_ID}/config").json()["latest"]
        other = {**latest["body"], "detect_fps": 3}
        assert hubs.api("PUT", f"/cameras/{CAMERA_ID}/config",
                        json={"body": other, "base_version": latest["version"]}).status_code == 200
        page.click("#cfg-confirm")
        expect(page.locator(".save-panel .error")).to_contain_text("配置已被他人修改")
        classes = {c["id"] for c in hubs.api("GET", "/classes").json()}  # the rule forms' hints are class ids
        units = {"fps", "px", "IoU"}
        no_english(page, ids | classes | units | {CAMERA_ID, "device:demo-box", "demo-box", "np_top_right", "plaza"},
                   "after a stale config save")
        context.close()

        # -- the idle limit ends the session; the page says so and returns where it was ----------------------
        context, page = zh_cn_page(browser, js_errors)
        page.goto(f"{hubs.idle_base}/#/case/{idle_case}")
        sign_in(page, "qian.li")
        expect(page.locator(".detail-head .case-id")).to_have_text(idle_case)
        # Nobody touches the page: the live stream alone neither keeps the session nor misses its end.
        expect(page.locator("#login-error")).to_contain_text("分钟未操作，登录已结束", timeout=30_000)
        expect(page.locator("#app")).to_be_hidden()
        no_english(page, ids, "on the idle sign-out")
        shot(page, "codes-idle")
        sign_in(page, "qian.li")
        expect(page.locator(".detail-head .case-id")).to_have_text(idle_case)
        assert not page.evaluate("[...I18N.missing]"), "message keys missing from the catalogue"
        context.close()
        browser.close()
    assert not js_errors, f"JavaScript errors on the page: {js_errors}"
