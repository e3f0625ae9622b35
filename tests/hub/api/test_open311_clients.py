"""Open311 GeoReport v2 as a real client library reads it: the `georeport` package from PyPI, unchanged,
against a live hub over HTTP, in JSON and XML. (`three`, the other PyPI client, is Python 2 only.)
`georeport` 0.3.1 has no method to file a request, so requests are filed as the spec's form POST and read
back through the client."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests as http
import xmltodict
from fastapi.testclient import TestClient
from georeport import GeoReport

from hub.app import create_app
from hub.auth.tokens import create_token
from hub.cases.lifecycle import Role
from hub.storage.store import Store
from tests.hub.open311.photo_server import PHOTO, PhotoServer
from tests.hub.served import serve_app

LAT, LON = 31.2304, 121.4737
CONTACT = {"email": "li.wei@example.cn", "first_name": "Wei", "last_name": "Li", "phone": "13800138000"}


@pytest.fixture
def hub(store: Store, hub_settings: Any) -> Iterator[dict[str, str]]:
    _, reviewer = create_token(store, "citizen-app", Role.REVIEWER)
    with serve_app(create_app(hub_settings, store=store, background=False)) as base:
        yield {"root": f"{base}/open311/v2", "key": reviewer}


def _file(hub: dict[str, str], fmt: str, **fields: Any) -> http.Response:
    form = {"api_key": hub["key"], "jurisdiction_id": "cityeye", "service_code": "exposed_garbage",
            "lat": LAT, "long": LON, **fields}
    return http.post(f"{hub['root']}/requests.{fmt}", data=form, timeout=60)


def _error(response: http.Response, fmt: str) -> dict[str, Any]:
    """The one GeoReport error in `response`, parsed as the format asked for."""
    if fmt == "xml":
        assert response.headers["content-type"].startswith("text/xml"), response.text
        return dict(xmltodict.parse(response.content)["errors"]["error"])
    body = response.json()
    assert isinstance(body, list) and len(body) == 1, body
    return {k: str(v) for k, v in body[0].items()}


@pytest.mark.timeout(180)
def test_georeport_client_reads_and_files_in_json_and_xml(hub: dict[str, str]) -> None:
    filed: dict[str, str] = {}
    for fmt in ("json", "xml"):
        response = _file(hub, fmt, description=f"bags by the gate ({fmt})", media_url=f"https://x.example/{fmt}.jpg",
                         **CONTACT)
        assert response.status_code == 200, response.text
        body = response.json()[0] if fmt == "json" else xmltodict.parse(response.content)["service_requests"]["request"]
        assert body["service_notice"], body
        filed[fmt] = body["service_request_id"]
    assert filed["json"] == filed["xml"]  # the second report at the same place joins the first case

    for fmt in ("json", "xml"):
        client = GeoReport(hub["root"], jurisdiction="cityeye", output_format=fmt)  # no api_key: public reads
        services = client.get_service_list()
        assert len(services) >= 60 and "exposed_garbage" in {s["service_code"] for s in services}
        definition = client.get_service_definition("exposed_garbage")
        assert definition["service_code"] == "exposed_garbage"

        one = client.get_service_request(filed[fmt])
        assert one["service_request_id"] == filed[fmt] and one["status"] == "open"
        assert one["service_code"] == "exposed_garbage" and float(one["lat"]) == LAT and float(one["long"]) == LON
        assert one["media_url"] == "https://x.example/json.jpg"  # the first report's link, kept on the case
        assert one["expected_datetime"], one  # the class's deadline for the case's current stage
        assert "reporter: (hidden)" in one["description"]
        assert not any(v in one["description"] for v in CONTACT.values()), one["description"]

        listed = client.get_service_requests(status="open", service_code="exposed_garbage")
        listed = [listed] if isinstance(listed, dict) else listed  # xmltodict: one element is not a list
        assert filed[fmt] in [r["service_request_id"] for r in listed]

    staff = http.get(f"{hub['root']}/requests/{filed['json']}.json", params={"api_key": hub["key"]}, timeout=60)
    assert all(v in staff.json()[0]["description"] for v in CONTACT.values())  # staff act on the contacts


@pytest.mark.timeout(180)
def test_georeport_errors_on_every_path(hub: dict[str, str]) -> None:
    root = hub["root"]
    for fmt in ("json", "xml"):
        cases = [
            (_file(hub, fmt, lat="", long=""), 400, "or address_string or address_id"),
            (_file(hub, fmt, lat=LAT, long=""), 400, "lat and long"),
            (_file(hub, fmt, api_key="wrong"), 401, "api_key"),
            (http.get(f"{root}/requests/nope.{fmt}", timeout=60), 404, "no service request"),
            (http.get(f"{root}/services/nope.{fmt}", timeout=60), 404, "unknown service_code"),
            (http.get(f"{root}/no-such-thing.{fmt}", timeout=60), 404, "Not Found"),
            (http.delete(f"{root}/requests.{fmt}", timeout=60), 405, "Method Not Allowed"),
            (http.get(f"{root}/requests.{fmt}", params={"start_date": "2026-01-01"}, timeout=60), 400, "time zone"),
            (http.get(f"{root}/requests.{fmt}", params={"service_code": "a\x00b"}, timeout=60), 400, "NUL"),
            (http.post(f"{root}/requests.{fmt}", data=b"--zz\r\nnot a part",
                       headers={"Content-Type": "multipart/form-data; boundary=zz"}, timeout=60), 400, ""),
        ]
        for response, status, words in cases:
            assert response.status_code == status, (fmt, response.text)
            error = _error(response, fmt)
            assert error["code"] == str(status) and words in error["description"], (fmt, error)
    assert _error(http.get(f"{root[:-3]}/v9/services.xml", timeout=60), "xml")["code"] == "404"


def test_reads_can_require_a_key(store: Store, hub_settings: Any) -> None:
    _, reader = create_token(store, "reader-app", Role.READER)
    settings = hub_settings.model_copy(update={"open311_public_reads": False})
    with TestClient(create_app(settings, store=store, background=False)) as client:
        refused = client.get("/open311/v2/services.xml")
        assert refused.status_code == 401 and b"<errors>" in refused.content
        assert client.get("/open311/v2/services.json", params={"api_key": reader}).status_code == 200


def test_reporter_contacts_are_hidden_from_readers_on_the_case_api(store: Store, hub_settings: Any,
                                                                  hub: dict[str, str]) -> None:
    filed = _file(hub, "json", description="bags by the gate", **CONTACT).json()[0]["service_request_id"]
    _, reader = create_token(store, "viewer", Role.READER)
    with TestClient(create_app(hub_settings, store=store, background=False)) as client:
        def seen(token: str) -> tuple[str, str]:
            auth = {"Authorization": f"Bearer {token}"}
            listed = client.get("/cases", headers=auth).json()["items"]
            detail = client.get(f"/cases/{filed}", headers=auth).json()
            return next(c["description"] for c in listed if c["case_id"] == filed), detail["description"]

        for text in seen(reader):
            assert "reporter: (hidden)" in text and not any(v in text for v in CONTACT.values()), text
        for text in seen(hub["key"]):  # the reviewer acts on the case: may call the reporter back
            assert all(v in text for v in CONTACT.values()), text


@pytest.mark.timeout(180)
def test_georeport_client_reads_an_address_only_request_and_its_fetched_photo(store: Store, hub_settings: Any) -> None:
    """An address-only request with a media_url, filed over HTTP to a live hub whose fetcher runs; the
    client reads the address without lat/long, then the hub's copy of the photo once fetched."""
    _, key = create_token(store, "citizen-app", Role.REVIEWER)
    settings = hub_settings.model_copy(update={"open311_media_allow_cidrs": ["127.0.0.0/8"]})  # the local server
    photos = PhotoServer()
    try:
        with serve_app(create_app(settings, store=store)) as base:
            root = f"{base}/open311/v2"
            form = {"api_key": key, "service_code": "exposed_garbage", "address_string": "解放路 88 号",
                    "description": "bags by the gate", "media_url": photos.url("/photo.jpg")}
            filed = http.post(f"{root}/requests.json", data=form, timeout=60)
            assert filed.status_code == 200, filed.text
            case_id = filed.json()[0]["service_request_id"]
            sha = hashlib.sha256(PHOTO).hexdigest()
            for fmt in ("json", "xml"):
                client = GeoReport(root, jurisdiction="cityeye", output_format=fmt)
                deadline = time.monotonic() + 30
                one = client.get_service_request(case_id)
                while one["media_url"] != f"/evidence/{sha}" and time.monotonic() < deadline:
                    time.sleep(0.2)
                    one = client.get_service_request(case_id)
                assert one["media_url"] == f"/evidence/{sha}", one
                assert one["address"] == "解放路 88 号" and one["lat"] is None and one["long"] is None, one
            assert photos.hits["/photo.jpg"] == 1
    finally:
        photos.close()
