"""Secrets never reach the hub's log: `cityeye hub serve` as a user runs it, its real access log grepped."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from hub.api.log_redaction import redact
from hub.app import open_store
from hub.auth.tokens import create_token
from hub.cases.lifecycle import Role
from hub.settings import HubSettings
from tests.delivery_support import free_port


def test_redact_masks_credentials_and_keeps_the_rest() -> None:
    assert redact("GET /open311/v2/requests.json?api_key=abc123&status=open") == \
        "GET /open311/v2/requests.json?api_key=***&status=open"
    assert redact("Authorization: Bearer cey_secret more") == "Authorization: *** more"
    assert redact("GET /cases?limit=5") == "GET /cases?limit=5"


def test_access_log_of_a_served_hub_holds_no_api_key_or_token(tmp_path: Path) -> None:
    data, port = tmp_path / "hub", free_port()
    store = open_store(HubSettings(data_dir=data))
    try:
        _, token = create_token(store, "integrator", Role.ADMIN)
    finally:
        store.close()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cityeye", "hub", "serve", "--data", str(data),
                                 "--zmq", "none", "--api", f"127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert httpx.get(f"{base}/open311/v2/requests.json", params={"api_key": token}, timeout=10).status_code == 200
        assert httpx.get(f"{base}/cases", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
        r = httpx.post(f"{base}/open311/v2/requests.json", timeout=10,
                       data={"api_key": token, "service_code": "exposed_garbage", "lat": "31.2", "long": "121.4"})
        assert r.status_code < 500, r.text
        assert httpx.get(f"{base}/cases", params={"api_key": token, "token": token}, timeout=10).status_code < 500
    finally:
        proc.terminate()
        proc.wait(30)
    text = log.read_text(errors="replace")
    assert "GET /open311/v2/requests.json?api_key=*** HTTP" in text, text[-2000:]  # the line is there, masked
    assert token not in text
    assert token[len("cey_"):][:12] not in text
