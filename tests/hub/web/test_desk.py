"""The reviewer's desk in a real browser: Chinese first with the shipped font, 2 keystrokes a case, undo,
password accounts with lockout and CSRF.

One browser, one hub, one test walking the reviewer's path (a browser start costs seconds on CI). The
browser's language is zh-CN and it sees no system CJK font: Chromium gets a fontconfig file that lists
only DejaVu (when present), so Chinese renders from the page's own @font-face or as empty boxes. The test
first proves that (two different characters in a missing family draw the same .notdef box), then that
the page's font draws real, distinct glyphs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from hub.app import create_app, open_store
from hub.auth import users
from hub.auth.config import AccountPolicy
from hub.auth.tokens import create_token
from hub.cases.lifecycle import Role
from hub.settings import HubSettings, UnitConfig
from protocol.messages import NormBox
from tests.hub.served import serve_app
from tests.hub.web.test_reviewer import CHROMIUM, CHROMIUM_ARGS, add_case, edge_event, shot

pytestmark = pytest.mark.timeout(240)
PASSWORD = "qingming-shanghe-2026"
# A cheaper scrypt cost than production (2^17) keeps the ~10 checks of this test quick on a loaded box;
# the KDF itself is tested at full cost in tests/hub/auth.
POLICY = AccountPolicy(password_scrypt_n=2**12, sign_in_per_minute=100)
# Latin words a Chinese reviewer may see: the brand, key names on <kbd>, the language switch's own name,
# and units. Everything else in Latin letters must be an id or a proper name from the data.
ALLOWED_WORDS = {"CityEye", "English", "Enter", "Esc", "SHA", "KB", "MB", "B"}


def fontconfig_without_cjk(tmp: Path) -> Path:
    """A fontconfig file naming only DejaVu (or no font at all): no CJK fallback exists for Chromium."""
    dirs = "".join(f"<dir>{d}</dir>" for d in ("/usr/share/fonts/truetype/dejavu",) if Path(d).is_dir())
    conf = tmp / "fonts.conf"
    conf.write_text('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd">'
                    f"<fontconfig>{dirs}<cachedir>{tmp / 'fc-cache'}</cachedir></fontconfig>")
    return conf


def zh_cn_browser(p: Playwright, tmp: Path) -> Browser:
    """Chromium as a Chinese reviewer's: UI language zh-CN and no system CJK font to fall back on."""
    env = {**os.environ, "FONTCONFIG_FILE": str(fontconfig_without_cjk(tmp))}
    return p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--lang=zh-CN"], env=env)


def zh_cn_page(browser: Browser, js_errors: list[str]) -> tuple[BrowserContext, Page]:
    """A 1440x900 page in zh-CN and Beijing time whose script errors land in `js_errors`."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda exc: js_errors.append(str(exc)))
    return context, page


def add_case_at(store: Any, data: Path, camera_id: str, zone: str, box: NormBox) -> str:
    """A case whose box does not overlap the fixture's: dedup keeps it apart, a reviewer sees a duplicate."""
    event, media = edge_event(data, camera_id=camera_id, zone=zone)
    result = store.ingest_event(event.model_copy(update={"box": box}), media, manifest=b'{"m":1}',
                                signature=b"s" * 64, seq=1)
    assert result.created and result.case_id
    return str(result.case_id)


class Desk:
    def __init__(self, base: str, store: Any, data: Path) -> None:
        self.base, self.store, self.data = base, store, data
        self.admin_token = create_token(store, "desk-admin", Role.ADMIN)[1]

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.base + path, headers={"Authorization": f"Bearer {self.admin_token}"},
                             timeout=15, **kw)

    def case(self, case_id: str) -> dict[str, Any]:
        return self.api("GET", f"/cases/{case_id}").json()


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    data = Path(tmp_path_factory.mktemp("desk"))
    settings = HubSettings(data_dir=data, zmq_bind=None, sse_poll_s=0.2, accounts=POLICY,
                           units=[UnitConfig(id="dongcheng", name="东城中队", cameras=["cam-desk"])],
                           default_unit="dongcheng")
    store = open_store(settings)
    with serve_app(create_app(settings, store=store, background=False)) as base:
        yield Desk(base, store, data)
    store.close()


def test_csrf_is_refused_without_the_token_and_tokens_need_none(desk: Desk) -> None:
    users.add_user(desk.store, "csrf.user", Role.REVIEWER, PASSWORD, POLICY)
    case_id = add_case(desk.store, desk.data, "cam-csrf", zone="z-csrf")
    with httpx.Client(base_url=desk.base, timeout=15) as client:
        signed = client.post("/session", json={"username": "csrf.user", "password": PASSWORD})
        assert signed.status_code == 200, signed.text
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        csrf = signed.json()["csrf_token"]
        assert client.get("/me").json()["name"] == "csrf.user"  # reads need only the cookie
        refused = client.post(f"/cases/{case_id}/confirm", json={})
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
        wrong = client.post(f"/cases/{case_id}/confirm", json={}, headers={"X-CSRF-Token": csrf[:-2] + "xx"})
        assert wrong.status_code == 403
        assert desk.case(case_id)["status"] == "pending_review"
        ok = client.post(f"/cases/{case_id}/confirm", json={}, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 200 and ok.json()["status"] == "filed"
        assert client.delete("/session", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert client.get("/me").status_code == 401  # the session ended on the hub, not only in the browser
    assert desk.api("GET", "/me").status_code == 200  # API tokens are untouched


def visible_latin_words(page: Page, ids: set[str]) -> set[str]:
    """Latin words in the page's visible text once ids and proper names from the data are taken out."""
    text = page.evaluate("() => document.body.innerText")
    for value in sorted(ids, key=len, reverse=True):
        text = text.replace(value, " ")
    words = set(re.findall(r"[A-Za-z]+(?:[_.-][A-Za-z]+)*", text))
    return {w for w in words if w not in ALLOWED_WORDS and not re.fullmatch(r"[a-fA-F0-9]+|[a-z]", w)}


GLYPHS_JS = """([family, a, b]) => {
  const draw = (ch) => {
    const c = document.createElement("canvas"); c.width = 48; c.height = 48;
    const g = c.getContext("2d"); g.font = `32px ${family}`; g.fillStyle = "#000"; g.fillText(ch, 4, 38);
    return Array.from(g.getImageData(0, 0, 48, 48).data).join(",");
  };
  const pa = draw(a), pb = draw(b);
  return { same: pa === pb, inked: pa.split(",").some((v, i) => i % 4 === 3 && v !== "0") };
}"""


def test_the_reviewers_desk(desk: Desk, tmp_path: Path) -> None:
    ids: set[str] = {"Asia/Shanghai", "cam-desk", "z-desk", "z-other", "cam-csrf", "z-csrf", "li.wei", "box-1",
                     "desk-admin", "admin"}
    users.add_user(desk.store, "li.wei", Role.REVIEWER, PASSWORD, POLICY)
    users.add_user(desk.store, "zhang.san", Role.REVIEWER, PASSWORD, POLICY)
    first = add_case(desk.store, desk.data, "cam-desk", zone="z-desk")
    dup = add_case_at(desk.store, desk.data, "cam-desk", "z-desk", NormBox(x1=0.05, y1=0.5, x2=0.3, y2=0.8))
    third = add_case(desk.store, desk.data, "cam-desk", zone="z-other", class_id="exposed_garbage")
    fourth = add_case(desk.store, desk.data, "cam-desk", zone="z-other", class_id="bagged_garbage")
    ids |= {first, dup, third, fourth}
    with sync_playwright() as p:
        browser = zh_cn_browser(p, tmp_path)
        errors: list[str] = []
        context, page = zh_cn_page(browser, errors)
        page.goto(desk.base + "/")

        # -- Chinese first, from the page's own font ------------------------------------------------------
        expect(page.locator("#login")).to_be_visible()
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        expect(page.locator("#password-form button[type=submit]")).to_have_text("登录")
        assert not (leak := visible_latin_words(page, ids)), f"English on the sign-in page: {leak}"
        shot(page, "desk-login")
        tofu = page.evaluate(GLYPHS_JS, ['"NoSuchFamily"', "审", "核"])
        assert tofu["same"], "this browser has a CJK system font; the test needs one without"
        page.evaluate("document.fonts.ready")
        assert page.evaluate("document.fonts.check('16px \"CityEye Sans SC\"', '审核')")
        glyphs = page.evaluate(GLYPHS_JS, ['"CityEye Sans SC"', "审", "核"])
        assert glyphs["inked"] and not glyphs["same"], "the page's font draws the same box for 审 and 核: tofu"
        widths = page.evaluate("""() => {
          const span = (family) => { const s = document.createElement("span"); s.textContent = "案件审核";
            s.style.font = `20px ${family}`; document.body.append(s); const w = s.getBoundingClientRect().width;
            s.remove(); return w; };
          return [span('"CityEye Sans SC"'), span('"NoSuchFamily"')];
        }""")
        assert abs(widths[0] - widths[1]) > 1, f"rendered width equals a row of tofu boxes: {widths}"
        assert abs(widths[0] - 80) < 4, f"four full-width glyphs at 20 px are 80 px wide: {widths[0]}"

        # -- five wrong passwords lock the account, with a message ---------------------------------------
        for attempt in range(1, 6):
            page.fill("#username", "zhang.san")
            page.fill("#password", f"wrong-password-{attempt}")
            page.click("#password-form button[type=submit]")
            expect(page.locator("#password")).to_have_value("")  # the page clears it once the hub answered
            if attempt < 5:
                expect(page.locator("#login-error")).to_contain_text("用户名或密码错误")
        expect(page.locator("#login-error")).to_contain_text("账户已锁定")
        page.fill("#username", "zhang.san")
        page.fill("#password", PASSWORD)  # the right password is refused while locked
        held: list = []  # the answer is held back: nothing typed meanwhile may be lost when it comes
        page.route("**/session", lambda route: held.append(route))
        page.click("#password-form button[type=submit]")
        expect(page.locator("#password")).to_have_js_property("readOnly", True)
        expect(page.locator("#password-form button[type=submit]")).to_be_disabled()
        for _ in range(200):  # the route handler runs while Playwright waits, when the request reaches it
            if held:
                break
            page.wait_for_timeout(50)
        assert len(held) == 1, "the sign-in request was not sent"
        held[0].continue_()
        page.unroute("**/session")
        expect(page.locator("#password")).to_have_value("")  # answered (the lockout message was already shown)
        expect(page.locator("#password")).to_have_js_property("readOnly", False)
        expect(page.locator("#login-error")).to_contain_text("账户已锁定")
        expect(page.locator("#app")).to_be_hidden()
        shot(page, "desk-locked")

        # -- password sign-in; the queue in Chinese with crops, place, age and the unit routing picks -------
        page.fill("#username", "li.wei")
        page.fill("#password", PASSWORD)
        page.click("#password-form button[type=submit]")
        expect(page.locator("#whoami")).to_contain_text("li.wei · 审核员")
        row = page.locator(f'#queue tr[data-case-id="{first}"]')
        expect(row).to_contain_text("机动车乱停放")
        expect(row.locator("td.unit")).to_contain_text("拟派：东城中队")
        expect(row.locator(".age")).to_contain_text("前")
        page.wait_for_function("() => [...document.querySelectorAll('#queue img.thumb')].every(i => i.complete)")
        assert not (leak := visible_latin_words(page, ids)), f"English on the queue: {leak}"
        shot(page, "desk-queue")

        # -- 2 keystrokes: open, confirm; lands on the next pending case --------------------------------
        page.goto(f"{desk.base}/#/queue?sort=created_at")
        expect(page.locator("#queue tr.case-row").first).to_have_attribute("data-case-id", first)
        page.keyboard.press("Enter")  # 1: open the selected (first) case
        expect(page.locator(".detail-head .case-id")).to_have_text(first)
        expect(page.locator("#deadline-stage")).to_contain_text("审核时限")
        # The label editor names labels in Chinese with the model's id after each as a hint (ids).
        ids |= set(desk.api("GET", "/labels/names").json())
        shown = desk.case(first)
        ids |= {m["sha256"] for e in shown["events"] for m in e["media"]} | {e["event_id"] for e in shown["events"]}
        ids |= {x["actor"] for x in shown["timeline"]}
        assert not (leak := visible_latin_words(page, ids)), f"English on the case view: {leak}"
        shot(page, "desk-case")
        page.keyboard.press("c")  # 2: confirm
        expect(page.locator(".detail-head .case-id")).to_have_text(dup)
        assert desk.case(first)["status"] == "filed"

        # -- void with a preset reason: v, 1; lands on the next -------------------------------------------
        before = desk.case(dup)
        page.keyboard.press("v")
        page.keyboard.press("1")
        expect(page.locator(".detail-head .case-id")).to_have_text(third)
        voided = desk.case(dup)
        assert voided["status"] == "void" and voided["timeline"][-1]["note"] == "误报"

        # -- undo restores the previous state and audits it ------------------------------------------------
        page.keyboard.press("z")
        expect(page.locator(".detail-head .case-id")).to_have_text(dup)
        expect(page.locator(".detail-head .badge[data-status]")).to_have_attribute("data-status", "pending_review")
        undone = desk.case(dup)
        assert (undone["status"], undone["deadline_at"]) == ("pending_review", before["deadline_at"])
        assert voided["deadline_at"] is None  # a void case had no deadline; undo gave the review deadline back
        last = undone["timeline"][-1]
        assert (last["action"], last["from_status"], last["to_status"]) == ("undo", "void", "pending_review")
        assert last["actor"] == "reviewer:li.wei"
        expect(page.locator('#timeline li[data-action="undo"]')).to_contain_text("撤销了作废")
        ids |= {x["actor"] for x in undone["timeline"]} | {e["event_id"] for e in undone["events"]}
        ids |= {m["sha256"] for e in undone["events"] for m in e["media"]}
        assert not (leak := visible_latin_words(page, ids)), f"English on the case after undo: {leak}"

        # -- batch: the obvious duplicate voided in one go -----------------------------------------------
        page.goto(f"{desk.base}/#/queue")
        expect(page.locator(f'#queue tr[data-case-id="{dup}"]')).to_be_visible()
        page.keyboard.press("D")
        expect(page.locator(f'#queue tr[data-case-id="{dup}"]')).to_have_class(re.compile("marked"))
        shot(page, "desk-batch")
        page.click("#void-duplicates")
        expect(page.locator(f'#queue tr[data-case-id="{dup}"] .badge[data-status]')).to_have_attribute(
            "data-status", "void")
        assert desk.case(dup)["timeline"][-1]["note"] == f"重复案件：与 {first} 重复"

        # -- English on request; the admin lists users and tokens ----------------------------------------
        page.click("#lang")
        assert page.evaluate("document.documentElement.lang") == "en"
        expect(page.locator(f'#queue tr[data-case-id="{fourth}"] .badge[data-status]')).to_have_text("Pending review")
        page.click("#lang")
        page.click("#logout")
        expect(page.locator("#login")).to_be_visible()
        users.add_user(desk.store, "admin", Role.ADMIN, PASSWORD, POLICY)
        page.fill("#username", "admin")
        page.fill("#password", PASSWORD)
        page.click("#password-form button[type=submit]")
        page.click("#admin-tab")
        expect(page.locator('#users tr[data-user="zhang.san"]')).to_contain_text("锁定至")
        expect(page.locator("#tokens")).to_contain_text("desk-admin")
        shot(page, "desk-admin")
        assert not page.evaluate("[...I18N.missing]"), "message keys missing from the catalogue"
        context.close()
        browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
