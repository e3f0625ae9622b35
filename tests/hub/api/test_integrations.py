"""Other intakes, Open311, live changes (SSE), webhooks, statistics and the working calendar."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select

from hub.cases.overdue import OverdueSweeper
from hub.cases.workcal import WorkingCalendar
from hub.notify.webhooks import WebhookWorker, backoff
from hub.storage import db, schema
from hub.storage.store import Store
from tests.hub.hubfactory import T0, ingest, jpeg_bytes, make_event

Headers = dict[str, dict[str, str]]
LAT, LON = 39.9165, 116.3971
LOOPBACK = ["127.0.0.0/8"]  # the opt-in the receivers of these tests need (webhook_allow_cidrs)


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


@pytest.fixture
def loopback_client(store: Store, hub_settings: Any) -> Iterator[Any]:
    """A client on an app whose webhooks may reach this machine (the receivers below listen on 127.0.0.1)."""
    from fastapi.testclient import TestClient

    from hub.app import create_app

    settings = hub_settings.model_copy(update={"webhook_allow_cidrs": LOOPBACK})
    with TestClient(create_app(settings, store=store, background=False)) as c:
        yield c


def test_webhooks_sign_and_retry(loopback_client: Any, store: Store, tokens: Headers) -> None:
    client = loopback_client
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
        worker = WebhookWorker(store, threading.Event(), backoff_s=30.0, allow_cidrs=LOOPBACK)
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


def test_camera_offline_after_two_missed_heartbeats_and_stalled_shown(client: Any, store: Store,
                                                                       tokens: Headers) -> None:
    """An agent that stops sending (heartbeats every 10 s) shows its cameras offline 25 s later, not 90 s;
    a stalled camera (the agent says so at once) shows stalled with its frame age."""
    from sqlalchemy import update

    from hub.settings import HubSettings
    from protocol.messages import CameraHealth, Heartbeat

    assert HubSettings().camera_offline_after_s == 25.0
    store.add_device("box-1", "curve", "sign")
    store.record_heartbeat(Heartbeat(device_id="box-1", sent_at=datetime.now(UTC), cameras=[
        CameraHealth(camera_id="cam-1", online=True),
        CameraHealth(camera_id="cam-2", online=False, stalled=True, frame_age_s=6.5, last_error="stalled: no frame"),
    ]))
    cams = {c["camera_id"]: c for c in client.get("/cameras", headers=tokens["reader"]).json()}
    assert cams["cam-1"]["online"] and cams["cam-2"]["health"]["stalled"]
    assert cams["cam-2"]["health"]["frame_age_s"] == 6.5
    store.write(lambda conn: conn.execute(  # the agent died 30 s ago
        update(schema.cameras).values(last_seen=db.utcnow() - timedelta(seconds=30))))
    cams = {c["camera_id"]: c for c in client.get("/cameras", headers=tokens["reader"]).json()}
    assert not cams["cam-1"]["online"] and cams["cam-1"]["reported_online"]


# ---- webhook targets (SSRF) ----------------------------------------------------------------------------


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records the requests it gets."""

    url: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@contextmanager
def receiver(status: int = 204, headers: dict[str, str] | None = None, host: str = "127.0.0.1") -> Iterator[Receiver]:
    got = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.received.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer((host, 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    got.url = f"http://{host}:{server.server_port}/hook"
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


SECRET = "s3cret-s3cret-s3cret"
REFUSED = [
    ("http://user:pw@example.com/hook", "credentials"),
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://localhost/hook", "loopback"),  # a name: checked on what it resolves to
    ("http://2130706433/hook", "loopback"),  # 127.0.0.1 spelled as a number
    ("http://[::1]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4-mapped IPv6
    ("http://[2002:7f00:1::]/hook", "loopback"),  # 6to4 around 127.0.0.1
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.1.10/hook", "private"),
    ("http://[fd00::1]/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://[ff02::1]/hook", "multicast"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://[::]/hook", "unspecified"),
    ("http://240.0.0.1/hook", "reserved"),
    ("http://100.64.0.1/hook", "non-public"),  # carrier-grade NAT
    ("http://no-such-host.invalid/hook", "does not resolve"),
]


def app_client(store: Store, hub_settings: Any, **settings: Any) -> Any:
    from fastapi.testclient import TestClient

    from hub.app import create_app

    return TestClient(create_app(hub_settings.model_copy(update=settings), store=store, background=False))


@pytest.mark.parametrize(("url", "why"), REFUSED, ids=[u for u, _ in REFUSED])
def test_webhook_url_refused(client: Any, tokens: Headers, url: str, why: str) -> None:
    resp = client.post("/webhooks", json={"url": url, "secret": SECRET}, headers=tokens["admin"])
    assert resp.status_code == 422, resp.text
    error = resp.json()["detail"][0]
    assert error["loc"] == ["body", "url"] and why in error["msg"], error
    assert client.get("/webhooks", headers=tokens["admin"]).json() == []


def test_webhook_url_allow_list(store: Store, hub_settings: Any, tokens: Headers) -> None:
    with app_client(store, hub_settings) as client:  # a public address needs no opt-in (nothing is sent yet)
        assert client.post("/webhooks", json={"url": "https://8.8.8.8/hook", "secret": SECRET},
                           headers=tokens["admin"]).status_code == 201
        assert client.post("/webhooks", json={"url": "ftp://8.8.8.8/hook", "secret": SECRET},
                           headers=tokens["admin"]).json()["detail"][0]["loc"] == ["body", "url"]
    from hub.settings import HubSettings

    allowed = HubSettings(webhook_allow_cidrs=["10.20.0.0/16"]).webhook_allow_cidrs
    with app_client(store, hub_settings, webhook_allow_cidrs=allowed) as client:
        intranet = client.post("/webhooks", json={"url": "http://10.20.3.4:8080/hook", "secret": SECRET},
                               headers=tokens["admin"])
        assert intranet.status_code == 201, intranet.text
        for url in ("http://10.21.0.1/hook", "http://127.0.0.1/hook", "http://169.254.169.254/"):
            resp = client.post("/webhooks", json={"url": url, "secret": SECRET}, headers=tokens["admin"])
            assert resp.status_code == 422 and "webhook_allow_cidrs" in resp.text, (url, resp.text)


def _add_hook(store: Store, url: str, kinds: list[str]) -> int:
    """A subscription written straight to the database: as if the name resolved elsewhere at registration,
    or the allow-list was narrowed since."""
    return store.write(lambda conn: conn.execute(schema.webhooks.insert().values(
        url=url, secret=SECRET, kinds=kinds, active=True, created_at=db.utcnow() - timedelta(minutes=1),
    ).returning(schema.webhooks.c.id)).scalar_one())


def _deliveries(store: Store) -> dict[int, dict[str, Any]]:
    with store.engine.connect() as conn:
        return {r.webhook_id: dict(r._mapping) for r in conn.execute(select(schema.webhook_deliveries))}


def test_delivery_rechecks_the_target(store: Store) -> None:
    # Only 127.0.0.2 is allowed now; the other two targets are this machine's 127.0.0.1 (by name and by address).
    with receiver(host="127.0.0.2") as good, receiver() as bad:
        ok = _add_hook(store, good.url, ["case.created"])
        named = _add_hook(store, bad.url.replace("127.0.0.1", "localhost"), ["case.created"])
        literal = _add_hook(store, bad.url, ["case.created"])
        ingest(store, *make_event())
        worker = WebhookWorker(store, threading.Event(), allow_cidrs=["127.0.0.2/32"])
        assert worker.tick() == 3  # the refusals don't stop the worker: the good one is delivered
        log = _deliveries(store)
        assert log[ok]["status"] == "delivered" and len(good.received) == 1
        assert bad.received == []
        for hook in (named, literal):
            assert log[hook]["status"] == "pending" and log[hook]["attempts"] == 1  # retried with backoff
            assert log[hook]["last_error"].startswith("refused: ") and "loopback" in log[hook]["last_error"]
        assert "host 'localhost' resolves to" in log[named]["last_error"]


def test_redirects_are_not_followed(store: Store) -> None:
    # Not even to an allowed host: a receiver must not choose where the hub sends next.
    with receiver() as inside, receiver(status=302, headers={"Location": inside.url}) as hop, \
            receiver(status=307, headers={"Location": "http://169.254.169.254/latest/meta-data/"}) as hop2:
        first, second = _add_hook(store, hop.url, ["case.created"]), _add_hook(store, hop2.url, ["case.created"])
        ingest(store, *make_event())
        assert WebhookWorker(store, threading.Event(), allow_cidrs=LOOPBACK).tick() == 2
        assert len(hop.received) == len(hop2.received) == 1 and inside.received == []
        log = _deliveries(store)
        assert log[first]["last_error"].startswith("HTTP 302") and "not followed" in log[first]["last_error"]
        assert log[second]["last_error"].startswith("HTTP 307") and log[second]["status"] == "pending"


# ---- case.overdue --------------------------------------------------------------------------------------


def _make_late(store: Store, case_id: str, hours: float = 1.0) -> datetime:
    deadline = (db.utcnow() - timedelta(hours=hours)).replace(microsecond=123456)
    store.write(lambda conn: conn.execute(schema.cases.update().where(schema.cases.c.case_id == case_id)
                                          .values(deadline_at=deadline)))
    return deadline


def _timeline(client: Any, tokens: Headers, case_id: str) -> list[dict[str, Any]]:
    return client.get(f"/cases/{case_id}", headers=tokens["reader"]).json()["timeline"]


def test_overdue_fires_once_per_deadline(loopback_client: Any, store: Store, tokens: Headers, db_url: str | None,
                                         tmp_path: Path) -> None:
    from hub.app import open_store
    from hub.settings import HubSettings

    client = loopback_client
    late = ingest(store, *make_event(problem_id="prob-late01")).case_id
    fresh = ingest(store, *make_event(problem_id="prob-fresh1", camera_id="cam-2")).case_id
    void = ingest(store, *make_event(problem_id="prob-void01", zone="z9")).case_id
    client.post(f"/cases/{void}/void", json={"note": "reflection"}, headers=tokens["reviewer"])
    deadline = _make_late(store, late)
    _make_late(store, void)  # void: past its deadline, but not overdue
    with receiver() as hook:
        created = client.post("/webhooks", json={"url": hook.url, "secret": SECRET, "kinds": ["case.overdue"]},
                              headers=tokens["admin"])
        assert created.status_code == 201, created.text
        sweeper = OverdueSweeper(store, threading.Event())
        assert (sweeper.tick(), sweeper.tick()) == (1, 0)
        restarted = open_store(HubSettings(db_url=db_url, data_dir=tmp_path / "hub"))  # a new hub process
        try:
            assert OverdueSweeper(restarted, threading.Event()).tick() == 0
        finally:
            restarted.close()
        worker = WebhookWorker(store, threading.Event(), allow_cidrs=LOOPBACK)
        assert (worker.tick(), worker.tick()) == (1, 0)
        assert len(hook.received) == 1
        headers, body = hook.received[0]
        payload = json.loads(body)
        assert headers["X-CityEye-Event"] == "case.overdue" and payload["kind"] == "case.overdue"
        assert payload["case_id"] == late and payload["status"] == "pending_review"
        assert payload["data"]["deadline_at"] == deadline.isoformat()
        rows = [t for t in _timeline(client, tokens, late) if t["action"] == "overdue"]
        assert len(rows) == 1 and rows[0]["actor"] == "hub" and rows[0]["to_status"] == "pending_review"
        assert datetime.fromisoformat(rows[0]["at"].replace("Z", "+00:00")) == deadline
        assert not [t for t in _timeline(client, tokens, fresh) if t["action"] == "overdue"]
        # the case moves on: a new deadline, and when that one passes, one more event
        assert client.post(f"/cases/{late}/confirm", headers=tokens["reviewer"]).status_code == 200
        assert sweeper.tick() == 0
        second = _make_late(store, late, hours=0.5)
        assert (sweeper.tick(), sweeper.tick()) == (1, 0)
        worker.tick()
        assert [json.loads(b)["data"]["deadline_at"] for _, b in hook.received] == [
            deadline.isoformat(), second.isoformat()]
        assert json.loads(hook.received[1][1])["status"] == "filed"


def test_overdue_sweep_is_bounded_and_stops(store: Store) -> None:
    from hub.cases import overdue

    ids = [ingest(store, *make_event(problem_id=f"prob-many{i}", zone=f"m{i}")).case_id for i in range(5)]
    for case_id in ids:
        _make_late(store, case_id)
    sweeper = OverdueSweeper(store, threading.Event(), batch=2)
    assert [sweeper.tick() for _ in range(4)] == [2, 2, 1, 0]
    stop = threading.Event()
    thread = overdue.start(store, stop, poll_s=0.05)
    assert thread.is_alive()
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive()


def test_overdue_on_the_stream_same_payload_as_webhook(loopback_client: Any, store: Store,
                                                       tokens: Headers) -> None:
    client = loopback_client
    with receiver() as hook:
        client.post("/webhooks", json={"url": hook.url, "secret": SECRET,
                                       "kinds": ["case.created", "case.overdue"]}, headers=tokens["admin"])
        case_id = ingest(store, *make_event()).case_id
        _make_late(store, case_id)
        OverdueSweeper(store, threading.Event()).tick()
        WebhookWorker(store, threading.Event(), allow_cidrs=LOOPBACK).tick()
        posted = [json.loads(body) for _, body in hook.received]
    with client.stream("GET", "/stream/cases", params={"after": 0, "max_events": 2}, headers=tokens["reader"]) as r:
        body = "".join(r.iter_text())
    frames = [f for f in body.split("\n\n") if f.startswith("id:")]
    assert [f.split("\n")[1] for f in frames] == ["event: case.created", "event: case.overdue"]
    streamed = [json.loads(f.split("data: ", 1)[1]) for f in frames]
    assert streamed == posted  # one builder: the same JSON on both channels
    assert [f"id: {p['change_id']}" for p in posted] == [f.split("\n")[0] for f in frames]
    assert set(posted[1]) == {"change_id", "kind", "case_id", "status", "at", "data"}


def test_webhook_kinds_match_case_events() -> None:
    from typing import get_args

    from hub.api.schemas import WebhookKind
    from hub.cases import events as case_events

    assert get_args(WebhookKind) == case_events.KINDS


# ---- Open311 listing: media in one query ---------------------------------------------------------------


def _old_first_media(conn: Any, case_id: str) -> str | None:
    """The per-case query the listing used to run (the reference for its output)."""
    e, m = schema.events, schema.media
    return conn.execute(select(m.c.sha256).join(e, e.c.id == m.c.event_pk).where(e.c.case_id == case_id)
                        .order_by(e.c.id).limit(1)).scalar()


@contextmanager
def counted(store: Store) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(store.engine, "before_cursor_execute", count)


def test_open311_requests_fetch_media_in_one_query(client: Any, store: Store, tokens: Headers) -> None:
    key = {"api_key": tokens["reader"]["Authorization"].split()[1]}

    def listed() -> tuple[list[dict[str, Any]], int]:
        # A token's first use writes its last-used time in the background (hub.auth.tokens): not counted.
        for writer in [t for t in threading.enumerate() if t.name == "token-last-used"]:
            writer.join(20)
        with counted(store) as statements:
            resp = client.get("/open311/v2/requests.json", params=key)
        assert resp.status_code == 200, resp.text
        # SQLite's read/write mode switch (PRAGMA query_only) follows the pooled connection's last use: not a query
        return resp.json(), len([s for s in statements if not s.startswith("PRAGMA query_only")])

    def add_cases(first: int, n: int) -> None:
        for i in range(first, first + n):
            place = {"problem_id": f"prob-o311{i}", "camera_id": f"cam-o{i}"}
            case_id = ingest(store, *make_event(**place)).case_id
            if i % 2:  # a second event, with its own snapshot, joins the case
                again = make_event(**place, at=T0 + timedelta(minutes=1))
                assert ingest(store, *again, seq=2).case_id == case_id
        report = {"class_id": "exposed_garbage", "lat": LAT + first / 100, "lon": LON}  # no media at all
        assert client.post("/intake/report", json=report, headers=tokens["reviewer"]).json()["created"]

    listed()  # the reader token's first use: not counted (see listed)
    add_cases(0, 2)
    few, few_statements = listed()
    add_cases(2, 8)
    many, many_statements = listed()
    assert len(few) == 3 and len(many) == 12
    assert many_statements == few_statements  # no longer one query per case
    with store.engine.connect() as conn:
        expected = {r["service_request_id"]: _old_first_media(conn, r["service_request_id"]) for r in many}
    assert {r["service_request_id"]: r["media_url"] for r in many} == {
        k: f"/evidence/{v}" if v else None for k, v in expected.items()}
    assert sum(r["media_url"] is None for r in many) == 2
    one = client.get(f"/open311/v2/requests/{many[0]['service_request_id']}.json", params=key).json()
    assert one == [many[0]]


def test_open311_media_url_is_the_first_photo(client: Any, store: Store, tokens: Headers) -> None:
    shas = []
    for tag in ("before", "after"):
        resp = client.post("/evidence", files={"file": (f"{tag}.jpg", jpeg_bytes(tag), "image/jpeg")},
                           headers=tokens["handler"])
        shas.append(resp.json()["sha256"])
    report = {"class_id": "exposed_garbage", "lat": LAT, "lon": LON, "photo_sha256": shas}
    case_id = client.post("/intake/report", json=report, headers=tokens["reviewer"]).json()["case_id"]
    got = client.get(f"/open311/v2/requests/{case_id}.json", headers=tokens["reader"]).json()
    assert got[0]["media_url"] == f"/evidence/{shas[0]}"
