"""media_url photos fetched by the hub in the background, from a real local HTTP server, into the evidence
store and the evidence package; refusals kept on the case with their reason. The loopback server is reachable
only because these tests allow 127.0.0.0/8 in open311_media_allow_cidrs; the default refuses it (tested)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.app import create_app
from hub.open311.media import FetchLimits, MediaFetcher
from hub.settings import HubSettings
from hub.storage.store import Store
from protocol.package import verify_package
from tests.hub.open311.photo_server import PHOTO, PhotoServer

Headers = dict[str, dict[str, str]]
ROOT = "/open311/v2"
LOOPBACK = ["127.0.0.0/8"]


@pytest.fixture
def photos() -> Iterator[PhotoServer]:
    server = PhotoServer()
    try:
        yield server
    finally:
        server.close()


def _settings(tmp_path: Path, **more: Any) -> HubSettings:
    return HubSettings(data_dir=tmp_path / "hub", zmq_bind=None, default_unit="sanitation", **more)


def _file(client: TestClient, tokens: Headers, address: str, media_url: str) -> str:
    form = {"api_key": tokens["reviewer"]["Authorization"].removeprefix("Bearer "), "service_code": "exposed_garbage",
            "address_string": address, "media_url": media_url}
    response = client.post(f"{ROOT}/requests.json", data=form)
    assert response.status_code == 200, response.text
    return str(response.json()[0]["service_request_id"])


def _fetches(client: TestClient, tokens: Headers, case_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/cases/{case_id}", headers=tokens["reviewer"]).json()["media_fetches"])


def _wait_done(client: TestClient, tokens: Headers, case_id: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fetch = _fetches(client, tokens, case_id)[0]
        if fetch["status"] not in ("pending", "fetching"):
            return fetch
        time.sleep(0.1)
    raise AssertionError(f"media_url of {case_id} still {fetch['status']} after {timeout_s} s")


def test_photo_is_fetched_in_the_background_and_exported(store: Store, tmp_path: Path, tokens: Headers,
                                                         photos: PhotoServer) -> None:
    settings = _settings(tmp_path, open311_media_allow_cidrs=LOOPBACK)
    with TestClient(create_app(settings, store=store)) as client:  # background: the fetcher thread runs
        case_id = _file(client, tokens, "人民路 1 号", photos.url("/held.jpg"))
        # The POST has answered while the photo server still holds the photo back: it did not wait.
        assert not photos.release.is_set()
        assert _fetches(client, tokens, case_id)[0]["status"] in ("pending", "fetching")
        photos.release.set()
        fetch = _wait_done(client, tokens, case_id)
        sha = hashlib.sha256(PHOTO).hexdigest()
        assert (fetch["status"], fetch["sha256"], fetch["reason"]) == ("stored", sha, None), fetch

        case = client.get(f"/cases/{case_id}", headers=tokens["reviewer"]).json()
        assert [m["sha256"] for ev in case["events"] for m in ev["media"]] == [sha]
        assert client.get(f"/evidence/{sha}", headers=tokens["reader"]).content == PHOTO
        assert client.get(f"{ROOT}/requests/{case_id}.json").json()[0]["media_url"] == f"/evidence/{sha}"

        package = client.get(f"/cases/{case_id}/evidence-package", headers=tokens["reviewer"])
        report = verify_package(package.content)
        assert report.ok, report.errors
        assert [p.path for p in report.photos] == [f"photos/{sha}.jpg"], report.photos


@pytest.mark.parametrize(("path", "why"), [
    ("/corrupt.jpg", "not a JPEG photo that decodes"),
    ("/page.html", "content type 'text/html' is not a JPEG photo"),
    ("/big.jpg", "over the limit of 1048576 bytes"),
    ("/nothing-here.jpg", "HTTP 404"),
    ("/to-metadata", "169.254.169.254 is not a public address (link-local"),  # the redirect is checked too
])
def test_refused_media_keep_the_link_and_the_reason(store: Store, tmp_path: Path, tokens: Headers,
                                                    photos: PhotoServer, path: str, why: str) -> None:
    settings = _settings(tmp_path, open311_media_allow_cidrs=LOOPBACK, open311_media_max_mb=1)
    with TestClient(create_app(settings, store=store, background=False)) as client:
        url = photos.url(path)
        case_id = _file(client, tokens, "人民路 2 号", url)
        assert MediaFetcher(store, threading.Event(), FetchLimits.from_settings(settings)).tick() == 1
        fetch = _fetches(client, tokens, case_id)[0]
        assert fetch["status"] == "failed" and why in fetch["reason"] and fetch["sha256"] is None, fetch
        assert photos.hits[path] == 1
        assert client.get(f"{ROOT}/requests/{case_id}.json").json()[0]["media_url"] == url  # the link stays
        case = client.get(f"/cases/{case_id}", headers=tokens["reviewer"]).json()
        assert all(not ev["media"] for ev in case["events"])


def test_loopback_is_refused_by_default(store: Store, tmp_path: Path, tokens: Headers, photos: PhotoServer) -> None:
    settings = _settings(tmp_path)
    assert settings.open311_media_fetch and settings.open311_media_allow_cidrs == []
    with TestClient(create_app(settings, store=store, background=False)) as client:
        case_id = _file(client, tokens, "人民路 3 号", photos.url("/photo.jpg"))
        MediaFetcher(store, threading.Event(), FetchLimits.from_settings(settings)).tick()
        fetch = _fetches(client, tokens, case_id)[0]
        assert fetch["status"] == "failed" and "loopback" in fetch["reason"], fetch
        assert "open311_media_allow_cidrs" in fetch["reason"]
        assert sum(photos.hits.values()) == 0  # refused before connecting


def test_fetching_can_be_turned_off(store: Store, tmp_path: Path, tokens: Headers, photos: PhotoServer) -> None:
    settings = _settings(tmp_path, open311_media_fetch=False, open311_media_allow_cidrs=LOOPBACK)
    with TestClient(create_app(settings, store=store, background=False)) as client:
        case_id = _file(client, tokens, "人民路 4 号", photos.url("/photo.jpg"))
        assert MediaFetcher(store, threading.Event(), FetchLimits.from_settings(settings)).tick() == 0
        fetch = _fetches(client, tokens, case_id)[0]
        assert fetch["status"] == "off" and "open311_media_fetch" in fetch["reason"], fetch
        assert sum(photos.hits.values()) == 0
        assert client.get(f"{ROOT}/requests/{case_id}.json").json()[0]["media_url"] == photos.url("/photo.jpg")
