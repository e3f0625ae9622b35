"""What the district page tests share: signing in with a token, and the catalogue check."""

from __future__ import annotations

from playwright.sync_api import Page, expect


def sign_in(page: Page, token: str) -> None:
    """Tokens sit behind the login's disclosure (people sign in with a password)."""
    expect(page.locator("#login")).to_be_visible()
    if not page.locator("#token").is_visible():
        page.click("#token-login summary")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#app")).to_be_visible()


def no_missing_messages(page: Page) -> None:
    """Every string the district views showed came from the catalogue (i18n.js)."""
    assert page.evaluate("[...I18N.missing]") == []
