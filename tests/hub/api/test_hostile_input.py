"""Hostile values at every endpoint, on SQLite and PostgreSQL: a clear 4xx whose body is JSON, never a 5xx.

The values are the ones that gave 500s by hand: a NUL byte (PostgreSQL refuses it in text), a lone UTF-16
surrogate, NaN / Infinity / 1e400 in JSON, and dates near year 1 or 9999 with an offset (they overflow on
conversion to UTC). The property test takes requests schemathesis generates from the served OpenAPI
document and puts one hostile value into one of its parameters or JSON fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.hub.served import served_hub

NUL, SURROGATE = "a\x00b", "x\ud800y"
EARLY, LATE = "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"
# Raw JSON tokens: what a hostile client writes, not what Python's encoder would.
JSON_HOSTILE = ['"a\\u0000b"', '"x\\ud800y"', "NaN", "Infinity", "-Infinity", "1e400", f'"{EARLY}"', f'"{LATE}"',
                "123456789012345678901234567890"]
TEXT_HOSTILE = [NUL, SURROGATE, EARLY, LATE, "nan", "inf", "1e400"]


@pytest.fixture
def hub(db_url: str | None, tmp_path: Path) -> Iterator[dict[str, Any]]:
    with served_hub(tmp_path / "hub", db_url) as served:
        yield served


def _encode(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _assert_clear_refusal(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
        json.loads(response.text)  # the error body is valid JSON (no NaN echoed back)


@pytest.mark.parametrize("path", [
    f"/cases?class_id={_encode(NUL)}", f"/cases?class_id={_encode(SURROGATE)}", f"/cases/{_encode(NUL)}",
    f"/cases?since={_encode(EARLY)}", f"/cases?until={_encode(LATE)}", "/cases?bbox=nan,0,1,1",
    "/cases?bbox=0,0,inf,1", f"/stats?since={_encode(EARLY)}", f"/stats?until={_encode(LATE)}",
    f"/open311/v2/requests.json?start_date={_encode(EARLY)}", f"/open311/v2/requests.json?service_code={_encode(NUL)}",
])
def test_hostile_query_and_path_values_are_refused(hub: dict[str, Any], path: str) -> None:
    r = httpx.get(hub["base"] + path, headers=hub["headers"], timeout=10)
    _assert_clear_refusal(r, path)
    assert r.status_code in (400, 404, 422), r.text


def _sensor_body(**raw: str) -> str:
    fields = {"class_id": '"methane_over_threshold"', "lat": "31.2", "lon": "121.4", "sensor_id": '"s-1"',
              "alert_id": '"alert-0001"', "value": "3.5", "threshold": "2.0", **raw}
    return "{" + ",".join(f'"{k}": {v}' for k, v in fields.items()) + "}"


def _post_json(hub: dict[str, Any], path: str, body: str) -> httpx.Response:
    return httpx.post(hub["base"] + path, content=body, timeout=10,
                      headers={**hub["headers"], "Content-Type": "application/json"})


@pytest.mark.parametrize(("field", "raw"), [
    ("description", '"a\\u0000b"'), ("description", '"x\\ud800y"'), ("value", "NaN"), ("value", "Infinity"),
    ("threshold", "-Infinity"), ("value", "1e400"), ("observed_at", f'"{EARLY}"'), ("observed_at", f'"{LATE}"'),
])
def test_sensor_alert_with_hostile_field_is_422_and_stores_nothing(hub: dict[str, Any], field: str,
                                                                    raw: str) -> None:
    before = httpx.get(hub["base"] + "/cases", headers=hub["headers"], timeout=10).json()["total"]
    r = _post_json(hub, "/intake/sensor", _sensor_body(**{field: raw}))
    _assert_clear_refusal(r, f"{field}={raw}")
    assert r.status_code == 422, r.text
    assert field in json.dumps(r.json()["detail"])
    assert httpx.get(hub["base"] + "/cases", headers=hub["headers"], timeout=10).json()["total"] == before
    # The same alert with sane values is taken: the refusal was the hostile value's.
    assert _post_json(hub, "/intake/sensor", _sensor_body()).status_code in (200, 201)


def test_token_name_with_nul_is_refused(hub: dict[str, Any]) -> None:
    r = httpx.post(hub["base"] + "/tokens", content='{"name": "a\\u0000b", "role": "reader"}', timeout=10,
                   headers={**hub["headers"], "Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "name"]


def _mutations(case: Any) -> list[tuple[str, str]]:
    spots = [("query", k) for k in (case.query or {})] + [("path", k) for k in (case.path_parameters or {})]
    if isinstance(case.body, dict):
        spots += [("body", k) for k in case.body]
    return spots


@pytest.mark.timeout(300)
def test_no_5xx_with_one_hostile_value_anywhere(hub: dict[str, Any]) -> None:
    api = schemathesis.openapi.from_url(f"{hub['base']}/openapi.json")
    operations = [op.ok() for op in api.get_all_operations()
                  if (op.ok().method.upper(), op.ok().path) not in {("GET", "/stream/cases"),
                                                                    ("DELETE", "/tokens/{token_id}")}]
    assert len(operations) >= 20
    hit: set[str] = set()
    for op in operations:

        @given(case=op.as_strategy(), data=st.data())
        @settings(max_examples=8, deadline=None, phases=[Phase.generate], database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: Any, data: st.DataObject) -> None:
            spots = _mutations(case)
            if not spots:
                return
            where, key = data.draw(st.sampled_from(spots))
            url = hub["base"] + case.formatted_path
            query = dict(case.query or {})
            headers = {**hub["headers"], **{k: str(v) for k, v in (case.headers or {}).items()
                                            if k.lower() != "authorization"}}
            content: str | None = None
            if where == "query":
                query[key] = data.draw(st.sampled_from(TEXT_HOSTILE))
            elif where == "path":
                url = hub["base"] + case.operation.path.format(**{**case.path_parameters,
                                                      key: _encode(data.draw(st.sampled_from([NUL, EARLY])))})
            if isinstance(case.body, dict):
                fields = {k: json.dumps(v) for k, v in case.body.items()}
                if where == "body":
                    fields[key] = data.draw(st.sampled_from(JSON_HOSTILE))
                content = "{" + ",".join(f"{json.dumps(k)}: {v}" for k, v in fields.items()) + "}"
                headers["Content-Type"] = "application/json"
            qs = "&".join(f"{_encode(str(k))}={_encode(str(v))}" for k, v in query.items())
            r = httpx.request(case.method, url + (f"?{qs}" if qs else ""), content=content, headers=headers,
                              timeout=10)
            hit.add(f"{case.method} {case.operation.path}")
            _assert_clear_refusal(r, f"{case.method} {case.operation.path} {where}.{key}")

        fuzz()
    assert "POST /intake/sensor" in hit and "GET /cases" in hit
