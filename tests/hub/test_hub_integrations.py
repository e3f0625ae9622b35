"""Other intakes, Open311, live changes (SSE), webhooks, statistics and the working calendar."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from hubfactory import ingest, make_event

from hub.store import Store
from hub.webhooks import WebhookWorker, backoff
from hub.workcal import WorkingCalendar

Headers = dict[str, dict[str, str]]
LAT, LON = 39.9165, 116.3971


def test_sensor_alerts_and_manual_reports_share_dedup(client: Any, tokens: Headers) -> None:
    # A methane sensor at a septic tank: repeats join one case; another sensor next to it opens its own.
    gas = {"sensor_id": "septic-12", "alert_id": "ch4-0000001", "class_id": "methane_over_threshold",
           "lat": LAT, "lon": LON, "value": 1.8, "threshold": 1.0, "measure_unit": "%LEL"}
    first_gas = client.post("/intake/sensor", json=gas, headers=tokens["sensor"]).json()
    again_gas = client.post("/intake/sensor", json=gas, headers=tokens["sensor"]).json()
    later_gas = client.post("/intake/sensor", json={**gas, "alert_id": "ch4-0000002", "value": 2.4},
                            headers=tokens["sensor"]).json()
    assert first_gas["created"] and again_gas["duplicate"] and later_gas["case_id"] == first_gas["case_id"]
    gas_case = client.get(f"/cases/{first_gas['case_id']}", headers=tokens["reader"]).json()
    assert gas_case["class_id"] == "methane_over_threshold" and gas_case["source"] == "sensor"
    assert gas_case["event_count"] == 2
    alert = {"sensor_id": "noise-7", "alert_id": "alert-000001", "class_id": "construction_noise",
             "lat": LAT, "lon": LON, "value": 82.5, "threshold": 70, "measure_unit": "dB"}
    first = client.post("/intake/sensor", json=alert, headers=tokens["sensor"]).json()
    again = client.post("/intake/sensor", json=alert, headers=tokens["sensor"]).json()
    repeat = client.post("/intake/sensor", json={**alert, "alert_id": "alert-000002"}, headers=tokens["sensor"]).json()
    assert first["created"] and again["duplicate"] and repeat["case_id"] == first["case_id"]
    # an inspector reports the same noise 20 m away (noise dedups at 50 m): same case
    near = {"class_id": "construction_noise", "lat": LAT + 20 / 111_195, "lon": LON, "description": "drilling"}
    assert client.post("/intake/report", json=near, headers=tokens["reviewer"]).json()["case_id"] == first["case_id"]
    far = {**near, "lat": LAT + 0.01}
    assert client.post("/intake/report", json=far, headers=tokens["reviewer"]).json()["created"]
    bad = client.post("/intake/report", json={**near, "class_id": "methane_leak"}, headers=tokens["reviewer"])
    assert bad.status_code == 422 and "unknown class_id" in bad.json()["detail"]
    naive = client.post("/intake/report", json={**near, "observed_at": "2026-11-23T09:00:00"},
                        headers=tokens["reviewer"])
    assert naive.status_code == 422 and "time zone" in naive.text
    detail = client.get(f"/cases/{first['case_id']}", headers=tokens["reader"]).json()
    assert detail["event_count"] == 3 and detail["source"] == "sensor"


def test_open311(client: Any, store: Store, tokens: Headers) -> None:
    services = client.get("/open311/v2/services.json", headers=tokens["reader"]).json()
    assert len(services) >= 60 and {"service_code", "service_name", "group"} <= set(services[0])
    key = tokens["reviewer"]["Authorization"].split()[1]
    form = {"api_key": key, "service_code": "exposed_garbage", "lat": LAT, "long": LON, "description": "bags"}
    created = client.post("/open311/v2/requests.json", data=form)
    assert created.status_code == 200, created.text
    request_id = created.json()[0]["service_request_id"]
    got = client.get(f"/open311/v2/requests/{request_id}.json", params={"api_key": key}).json()
    assert got[0]["status"] == "open" and got[0]["lat"] == LAT and got[0]["service_code"] == "exposed_garbage"
    listed = client.get("/open311/v2/requests.json", params={"api_key": key, "status": "open"}).json()
    assert request_id in [r["service_request_id"] for r in listed]
    assert client.get("/open311/v2/requests.json", params={"status": "closed"}, headers=tokens["reader"]).json() == []
    reader_key = tokens["reader"]["Authorization"].split()[1]
    # Errors as GeoReport v2 has them: [{"code": ..., "description": ...}]
    for response, code, words in (
        (client.post("/open311/v2/requests.json", data={**form, "service_code": "nope"}), 400, "unknown service_code"),
        (client.post("/open311/v2/requests.json", data={**form, "lat": "north"}), 400, "lat"),
        (client.post("/open311/v2/requests.json", data={**form, "api_key": "x"}), 401, "api_key"),
        (client.post("/open311/v2/requests.json", data={**form, "api_key": reader_key}), 403, "may not POST"),
        (client.get("/open311/v2/requests/none.json", headers=tokens["reader"]), 404, "no service request"),
        (client.get("/open311/v2/requests.json", params={"status": "x"}, headers=tokens["reader"]), 400, "status"),
    ):
        assert response.status_code == code, response.text
        body = response.json()
        assert isinstance(body, list) and body[0]["code"] == code and words in body[0]["description"], body
    assert client.post("/open311/v2/requests.json", data={**form, "api_key": "x"}).headers["www-authenticate"]
    assert "detail" in client.get("/cases/none", headers=tokens["reader"]).json()  # the rest of the API: unchanged


def test_server_sent_events(client: Any, store: Store, tokens: Headers) -> None:
    event, media = make_event()
    case_id = ingest(store, event, media).case_id
    client.post(f"/cases/{case_id}/confirm", headers=tokens["reviewer"])
    with client.stream("GET", "/stream/cases", params={"after": 0, "max_events": 2}, headers=tokens["reader"]) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        body = "".join(r.iter_text())
    frames = [f for f in body.split("\n\n") if f.startswith("id:")]
    assert [json.loads(f.split("data: ", 1)[1])["kind"] for f in frames] == ["case.created", "case.transition"]


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    fail_first = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        status = 500 if type(self).fail_first and len(type(self).received) == 1 else 204
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_webhooks_sign_and_retry(client: Any, store: Store, tokens: Headers) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.received = []
    try:
        secret = "s3cret-s3cret-s3cret"
        url = f"http://127.0.0.1:{server.server_port}/hook"
        hook = client.post("/webhooks", json={"url": url, "secret": secret, "kinds": ["case.created"]},
                           headers=tokens["admin"]).json()
        event, media = make_event()
        case_id = ingest(store, event, media).case_id
        worker = WebhookWorker(store, threading.Event(), backoff_s=30.0)
        assert worker.tick() == 1  # first attempt: HTTP 500
        assert worker.tick() == 0  # not due yet (backoff)
        assert worker.tick(now=datetime.now(UTC) + timedelta(seconds=31)) == 1
        headers, body = _Receiver.received[-1]
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-CityEye-Signature"] == expected and json.loads(body)["case_id"] == case_id
        deliveries = client.get(f"/webhooks/{hook['id']}/deliveries", headers=tokens["admin"]).json()
        assert deliveries[0]["status"] == "delivered" and deliveries[0]["attempts"] == 2
        assert client.post("/webhooks", json={"url": "file:///etc/passwd", "secret": secret},
                           headers=tokens["admin"]).status_code == 422
    finally:
        server.shutdown()
    assert [backoff(n, 2.0) for n in (1, 2, 3)] == [2.0, 4.0, 8.0] and backoff(40, 2.0) == 3600.0


def test_statistics_precision_and_on_time(client: Any, store: Store, tokens: Headers) -> None:
    ids = []
    for i in range(4):
        event, media = make_event(problem_id=f"prob-stat{i:03d}", zone=f"z{i}")
        ids.append(ingest(store, event, media).case_id)
    for case_id in ids[:3]:
        client.post(f"/cases/{case_id}/confirm", headers=tokens["reviewer"])
    client.post(f"/cases/{ids[3]}/void", json={"note": "reflection"}, headers=tokens["reviewer"])
    since = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    stats = client.get("/stats", params={"since": since}, headers=tokens["reader"]).json()
    row = next(r for r in stats["per_class"] if r["class_id"] == "illegal_car_parking")
    assert (row["events"], row["cases"], row["filed"], row["void"], row["precision"]) == (4, 4, 3, 1, 0.75)
    assert sum(d["cases"] for d in stats["per_day"]) == 4 and stats["median_hours_to_close"] is None
    cams = client.get("/classes", headers=tokens["reader"]).json()
    assert next(c for c in cams if c["id"] == "illegal_car_parking")["dedup_radius_m"] == 10.0


def test_working_calendar() -> None:
    cal = WorkingCalendar(tz=ZoneInfo("Asia/Shanghai"), holidays=frozenset({date(2026, 11, 25)}))
    cst = ZoneInfo("Asia/Shanghai")
    monday_11 = datetime(2026, 11, 23, 11, 0, tzinfo=cst)
    assert cal.add_working_hours(monday_11, 0.5) == datetime(2026, 11, 23, 11, 30, tzinfo=cst)
    assert cal.add_working_hours(monday_11, 2) == datetime(2026, 11, 23, 14, 30, tzinfo=cst)  # lunch skipped
    friday_17 = datetime(2026, 11, 27, 17, 0, tzinfo=cst)
    assert cal.add_working_hours(friday_17, 1) == datetime(2026, 11, 30, 9, 0, tzinfo=cst)  # weekend skipped
    tuesday_17 = datetime(2026, 11, 24, 17, 0, tzinfo=cst)
    assert cal.add_working_hours(tuesday_17, 1) == datetime(2026, 11, 26, 9, 0, tzinfo=cst)  # holiday
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=cst)
    assert cal.add_working_hours(saturday, 7.5) == datetime(2026, 11, 30, 17, 30, tzinfo=cst)
    assert cal.working_hours_between(monday_11, datetime(2026, 11, 23, 14, 30, tzinfo=cst)) == 2.0
    assert time(8, 30) == cal.periods[0][0]


def test_hostile_query_values_get_4xx(client: Any, tokens: Headers) -> None:
    h = tokens["admin"]
    assert client.get("/stats", params={"until": "0001-01-01T00:00:00Z"}, headers=h).status_code == 422
    assert client.get("/stats", params={"since": "2026-01-01T00:00:00"}, headers=h).status_code == 422
    assert client.delete(f"/tokens/{2**70}", headers=h).status_code == 422
    assert client.get("/evidence/..%2F..%2Fhub.db", headers=h).status_code in (404, 422)
    assert client.get(f"/evidence/{'0' * 64}", headers=h).status_code == 404
    huge = client.post("/intake/report", json={"class_id": "exposed_garbage", "lat": 91, "lon": 0}, headers=h)
    assert huge.status_code == 422 and "lat" in huge.text


def test_cameras_and_devices_online_state(client: Any, store: Store, tokens: Headers) -> None:
    from protocol.messages import CameraHealth, Heartbeat

    store.add_device("box-1", "curve", "sign")
    store.record_heartbeat(Heartbeat(device_id="box-1", sent_at=datetime.now(UTC), agent_version="0.1", cameras=[
        CameraHealth(camera_id="cam-1", online=True, detect_fps=4.0),
        CameraHealth(camera_id="cam-2", online=False, last_error="rtsp: 401"),
    ]))
    cams = {c["camera_id"]: c for c in client.get("/cameras", headers=tokens["reader"]).json()}
    assert cams["cam-1"]["online"] and not cams["cam-2"]["online"]
    assert cams["cam-2"]["health"]["last_error"] == "rtsp: 401"
    devices = client.get("/devices", headers=tokens["reader"]).json()
    assert devices == [{**devices[0], "device_id": "box-1", "online": True, "cameras": ["cam-1", "cam-2"]}]
    assert "curve_public_key" not in devices[0]
    store.revoke_device("box-1")
    assert not client.get("/devices", headers=tokens["reader"]).json()[0]["online"]
