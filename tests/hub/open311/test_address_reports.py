"""Reports with a street address and no lat/long (GeoReport v2 allows them): kept as cases with the address and
no place, deduplicated by class and address, routed without area rules, shown, exported; or refused, per
setting; or placed by the bureau's gazetteer. On SQLite and PostgreSQL (the `store` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import xmltodict
from fastapi.testclient import TestClient
from pydantic import ValidationError

from hub.app import create_app
from hub.settings import HubSettings, UnitConfig
from hub.storage import db
from hub.storage.store import Store
from protocol.package import verify_package

Headers = dict[str, dict[str, str]]
ROOT = "/open311/v2"


def _settings(tmp_path: Path, **more: Any) -> HubSettings:
    # An area unit first: a case with no place must skip it and go by class or to the default unit.
    units = [UnitConfig(id="grid-7", bbox=(121.0, 31.0, 122.0, 32.0)),
             UnitConfig(id="roads", classes=["damaged_road"]), UnitConfig(id="sanitation")]
    return HubSettings(data_dir=tmp_path / "hub", zmq_bind=None, units=units, default_unit="sanitation", **more)


@pytest.fixture
def api(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path), store=store, background=False)) as client:
        yield client


def _file(client: TestClient, key: str, fmt: str = "json", **fields: Any) -> Any:
    form = {"api_key": key, "service_code": "exposed_garbage", **fields}
    return client.post(f"{ROOT}/requests.{fmt}", data=form)


def _key(tokens: Headers, role: str = "reviewer") -> str:
    return tokens[role]["Authorization"].removeprefix("Bearer ")


def test_address_only_report_is_a_case_without_a_place(api: TestClient, tokens: Headers) -> None:
    key = _key(tokens)
    first = _file(api, key, address_string="人民路 1 号", description="垃圾堆在门口")
    assert first.status_code == 200, first.text
    filed = first.json()[0]
    assert "no position" in filed["service_notice"]
    case_id = filed["service_request_id"]

    # Same class, same address written differently (spaces, full-width digit): the same case.
    again = _file(api, key, fmt="xml", address_string="人民路１号")
    assert xmltodict.parse(again.content)["service_requests"]["request"]["service_request_id"] == case_id
    # Another class at that address, another address, and a point report: each a case of its own (a case
    # with no point is never matched by distance, and a point is never matched to it).
    others = [_file(api, key, service_code="damaged_road", address_string="人民路 1 号"),
              _file(api, key, address_string="人民路 3 号"),
              _file(api, key, lat=31.2304, long=121.4737)]
    ids = {r.json()[0]["service_request_id"] for r in others}
    assert len(ids) == 3 and case_id not in ids

    # Open311 reads: the address, no lat/long, in JSON and XML.
    one = api.get(f"{ROOT}/requests/{case_id}.json").json()[0]
    assert one["address"] == "人民路 1 号" and one["lat"] is None and one["long"] is None
    xml = xmltodict.parse(api.get(f"{ROOT}/requests/{case_id}.xml").content)["service_requests"]["request"]
    assert xml["address"] == "人民路 1 号" and xml["lat"] is None

    # The case API: the address, no position, routed without the area unit, and said so.
    case = api.get(f"/cases/{case_id}", headers=tokens["reviewer"]).json()
    assert case["address"] == "人民路 1 号" and case["lat"] is None and case["ground"] is None
    assert case["event_count"] == 2
    assert case["routed_unit"] == "sanitation" and case["routing_note"] == "no_place"
    road = next(r.json()[0]["service_request_id"] for r in others[:1])
    assert api.get(f"/cases/{road}", headers=tokens["reviewer"]).json()["routed_unit"] == "roads"
    point = others[2].json()[0]["service_request_id"]
    placed = api.get(f"/cases/{point}", headers=tokens["reviewer"]).json()
    assert placed["routed_unit"] == "grid-7" and placed["routing_note"] is None

    # Dispatch without naming a unit goes where the page said it would.
    assert api.post(f"/cases/{case_id}/confirm", json={}, headers=tokens["reviewer"]).status_code == 200
    sent = api.post(f"/cases/{case_id}/dispatch", json={}, headers=tokens["dispatcher"])
    assert sent.status_code == 200 and sent.json()["unit"] == "sanitation", sent.text

    # The map's list of cases with no position, and the statistics count them.
    nowhere = api.get("/cases", params={"placed": "false"}, headers=tokens["reader"]).json()["items"]
    assert {c["case_id"] for c in nowhere} == {case_id, *ids} - {point}
    stats = api.get("/stats", params={"since": (db.utcnow() - timedelta(hours=1)).isoformat()},
                    headers=tokens["reader"])
    assert stats.status_code == 200, stats.text
    per_class = {c["class_id"]: c["cases"] for c in stats.json()["per_class"]}
    assert per_class["exposed_garbage"] == 3 and per_class["damaged_road"] == 1, per_class

    # The evidence package: exported, verifies, and its case.json carries the address and no place.
    package = api.get(f"/cases/{case_id}/evidence-package", headers=tokens["reviewer"])
    assert package.status_code == 200, package.text
    report = verify_package(package.content)
    assert report.ok, report.errors


def test_address_reports_join_only_within_the_dedup_window(api: TestClient, tokens: Headers) -> None:
    body = {"class_id": "exposed_garbage", "address": "Main St 1"}
    now = db.utcnow()
    first = api.post("/intake/report", json={**body, "observed_at": now.isoformat()}, headers=tokens["reviewer"])
    near = api.post("/intake/report", json={**body, "address": "main st. 1",
                                            "observed_at": (now + timedelta(hours=1)).isoformat()},
                    headers=tokens["reviewer"])
    late = api.post("/intake/report", json={**body, "observed_at": (now + timedelta(hours=8)).isoformat()},
                    headers=tokens["reviewer"])
    assert first.json()["created"] and near.json()["case_id"] == first.json()["case_id"]
    assert late.json()["created"] and late.json()["case_id"] != first.json()["case_id"]
    by_id = [_file(api, _key(tokens), address_id="GB-310101-0042") for _ in range(2)]
    assert by_id[0].json()[0]["service_request_id"] == by_id[1].json()[0]["service_request_id"]
    case = api.get(f"/cases/{by_id[0].json()[0]['service_request_id']}", headers=tokens["reviewer"]).json()
    assert case["address"] == "address_id GB-310101-0042" and case["lat"] is None
    half = api.post("/intake/report", json={"class_id": "exposed_garbage", "lat": 31.2}, headers=tokens["reviewer"])
    assert half.status_code == 422 and "lat and lon" in half.text


def test_address_only_reports_refused_by_setting(store: Store, tmp_path: Path, tokens: Headers) -> None:
    settings = _settings(tmp_path, address_only_reports="refuse")
    with TestClient(create_app(settings, store=store, background=False)) as client:
        for fmt in ("json", "xml"):
            refused = _file(client, _key(tokens), fmt=fmt, address_string="人民路 1 号")
            assert refused.status_code == 400
            text = refused.text
            assert "lat and long are required" in text and "address_only_reports" in text, text
        intake = client.post("/intake/report", json={"class_id": "exposed_garbage", "address": "人民路 1 号"},
                             headers=tokens["reviewer"])
        assert intake.status_code == 422 and "address_only_reports" in intake.text


def test_gazetteer_places_a_listed_address(store: Store, tmp_path: Path, tokens: Headers) -> None:
    places = tmp_path / "gazetteer.csv"
    places.write_text("address,lat,lon\n# the bureau's own list\n人民路 1 号,31.2305,121.4740\n", encoding="utf-8")
    settings = _settings(tmp_path, gazetteer=places)
    with TestClient(create_app(settings, store=store, background=False)) as client:
        listed = _file(client, _key(tokens), address_string="人民路1号").json()[0]["service_request_id"]
        unknown = _file(client, _key(tokens), address_string="无名巷 9 号").json()[0]["service_request_id"]
        case = client.get(f"/cases/{listed}", headers=tokens["reviewer"]).json()
        assert (case["lat"], case["lon"], case["address"]) == (31.2305, 121.474, "人民路1号")
        assert case["routed_unit"] == "grid-7" and case["routing_note"] is None
        assert client.get(f"/cases/{unknown}", headers=tokens["reviewer"]).json()["lat"] is None


def test_settings_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="address_only_reports"):
        HubSettings(address_only_reports="maybe")
    bad = tmp_path / "g.csv"
    bad.write_text("人民路 1 号,31.2,121.4\n人民路 2 号,north,121.4\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"gazetteer(.|\n)*line 2: lat 'north' is not a number"):
        HubSettings(gazetteer=bad)
    with pytest.raises(ValidationError, match=r"gazetteer(.|\n)*cannot read it"):
        HubSettings(gazetteer=tmp_path / "missing.csv")
