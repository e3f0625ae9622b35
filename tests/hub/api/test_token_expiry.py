"""API tokens with an expiry and a last-used time: refused once expired (saying so), on both databases,
through the API, Open311 and the `cityeye hub token` commands; older databases gain the columns."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, update

from cityeye.cli import main
from hub.auth.tokens import _digest, create_token, list_tokens, parse_lifetime, resolve_token
from hub.cases.lifecycle import Role
from hub.storage import db, migrations, schema
from hub.storage.store import Store


def _last_used(store: Store, token_id: int) -> Any:
    """The token's last-used time once its background write landed (None after 20 s)."""
    deadline = time.monotonic() + 20
    while (value := list_tokens(store, token_id)[0]["last_used_at"]) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def _expire(store: Store, token_id: int) -> None:
    t = schema.api_tokens
    past = db.utcnow() - timedelta(seconds=1)
    store.write(lambda conn: conn.execute(update(t).where(t.c.id == token_id).values(expires_at=past)))


def test_expired_token_is_refused_saying_so(client: Any, store: Store) -> None:
    token_id, token = create_token(store, "night-shift", Role.REVIEWER, timedelta(days=90))
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/cases", headers=auth).status_code == 200
    assert _last_used(store, token_id) is not None
    [row] = list_tokens(store, token_id)
    assert timedelta(days=89) < row["expires_at"] - db.utcnow() <= timedelta(days=90)

    _expire(store, token_id)
    refused = client.get("/cases", headers=auth)
    assert refused.status_code == 401 and "expired" in refused.json()["detail"], refused.text
    georeport = client.post("/open311/v2/requests.json", data={"api_key": token, "service_code": "exposed_garbage",
                                                                "lat": 31.2, "long": 121.4})
    assert georeport.status_code == 401 and "expired" in georeport.json()[0]["description"], georeport.text
    unknown = client.get("/cases", headers={"Authorization": "Bearer cey_nobody"})
    assert unknown.status_code == 401 and "expired" not in unknown.json()["detail"]


def test_tokens_api_sets_and_shows_expiry(client: Any, store: Store, tokens: dict[str, dict[str, str]]) -> None:
    made = client.post("/tokens", json={"name": "app", "role": "reader", "expires_days": 30}, headers=tokens["admin"])
    assert made.status_code == 201 and made.json()["expires_at"], made.text
    forever = client.post("/tokens", json={"name": "box", "role": "sensor"}, headers=tokens["admin"]).json()
    listed = {t["name"]: t for t in client.get("/tokens", headers=tokens["admin"]).json()}
    assert listed["app"]["expires_at"] and listed["box"]["expires_at"] is None and forever["expires_at"] is None
    assert client.post("/tokens", json={"name": "x", "role": "reader", "expires_days": 0},
                       headers=tokens["admin"]).status_code == 422


def test_last_used_is_written_at_most_once_a_minute(store: Store) -> None:
    token_id, token = create_token(store, "busy", Role.READER)
    assert list_tokens(store, token_id)[0]["last_used_at"] is None
    resolve_token(store, token)
    first = _last_used(store, token_id)
    resolve_token(store, token)
    time.sleep(0.5)  # a second write, if one were started, lands in this time on an idle store
    assert first is not None and list_tokens(store, token_id)[0]["last_used_at"] == first


def test_lifetimes() -> None:
    assert parse_lifetime("90d") == timedelta(days=90) and parse_lifetime("12h") == timedelta(hours=12)
    for bad in ("0d", "90", "d", "3y", "-1d"):
        with pytest.raises(ValueError, match="--expires"):
            parse_lifetime(bad)


def test_cli_create_with_expiry_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data", str(tmp_path / "hub")]
    assert main(["hub", "token", "create", "ops", "--role", "reader", "--expires", "90d", *data]) == 0
    assert "valid for 90d" in capsys.readouterr().err
    assert main(["hub", "token", "create", "box", "--role", "sensor", *data]) == 0
    capsys.readouterr()
    assert main(["hub", "token", "list", *data]) == 0
    lines = {line.split("\t")[2]: line.split("\t") for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["ops"][3] != "never" and lines["box"][3] == "never" and lines["ops"][4] == "-"
    assert main(["hub", "token", "create", "x", "--role", "reader", "--expires", "soon", *data]) == 2
    assert "--expires 'soon'" in capsys.readouterr().err


def test_version_8_database_gains_token_expiry(db_url: str | None, tmp_path: Path) -> None:
    """A database made before step 9 keeps its tokens; they never expire and record their use."""
    engine = db.make_engine(db_url or db.sqlite_url(tmp_path))
    with db.begin_write(engine) as conn:  # version 8 as released: api_tokens without the two columns
        migrations.MIGRATIONS[0][2](conn)
        for column in ("expires_at", "last_used_at"):
            conn.exec_driver_sql(f"ALTER TABLE api_tokens DROP COLUMN {column}")
        for version, name, _ in migrations.MIGRATIONS[:8]:
            conn.execute(schema.schema_version.insert().values(version=version, name=name, applied_at=db.utcnow()))
        conn.exec_driver_sql(
            "INSERT INTO api_tokens (name, role, token_sha256, created_at, revoked) VALUES "
            f"('old', 'reader', '{_digest('cey_old')}', CURRENT_TIMESTAMP, {'false' if db_url else '0'})")
    assert "expires_at" not in {c["name"] for c in inspect(engine).get_columns("api_tokens")}

    assert migrations.migrate(engine) == migrations.SCHEMA_VERSION
    assert migrations.migrate(engine) == migrations.SCHEMA_VERSION  # nothing left to do
    store = Store(engine, tmp_path / "hub")
    principal = resolve_token(store, "cey_old")
    assert principal is not None and principal.name == "old" and principal.token_id is not None
    assert _last_used(store, principal.token_id) is not None
    with engine.connect() as conn:
        row = conn.execute(select(schema.api_tokens).where(schema.api_tokens.c.name == "old")).one()
    assert row.expires_at is None
    store.close()
