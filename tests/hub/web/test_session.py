"""GET /me: what the web page needs to present cases (who is signed in, bureau time zone, units)."""

from __future__ import annotations

from typing import Any


def test_me_names_the_token_role_zone_and_units(client: Any, tokens: dict[str, dict[str, str]]) -> None:
    me = client.get("/me", headers=tokens["reviewer"]).json()
    assert me == {"name": "reviewer-1", "role": "reviewer", "timezone": "Asia/Shanghai",
                  "units": [{"id": "district-east", "name": "district-east"},
                            {"id": "sanitation", "name": "sanitation"}],
                  "default_unit": "sanitation", "undo_grace_s": 60.0, "csrf_token": None,
                  "session_idle_minutes": None}  # a token has no idle limit
    assert client.get("/me", headers=tokens["sensor"]).json()["role"] == "sensor"  # so a client can say why not
    assert client.get("/me").status_code == 401


def test_web_page_is_served_without_a_token_and_api_404s_stay_json(client: Any) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'src="app.js"' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert client.get("/style.css").status_code == 200
    missing = client.get("/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found", "code": "not_found", "params": {}}
    assert client.get("/cases/NOPE", headers={}).status_code == 401
