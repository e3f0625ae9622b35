"""Hub fixtures: every store test runs on the embedded SQLite and on the real PostgreSQL server.

The PostgreSQL variant gets a fresh schema in the `test` database per test (dropped afterwards), and
skips with the reason when no server answers on CITYEYE_TEST_PG (default 127.0.0.1:5432).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.storage.store import Store

PG_BASE = os.environ.get("CITYEYE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_admin_conn() -> Any:
    import psycopg

    try:
        return psycopg.connect(PG_BASE, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server reachable at {PG_BASE}: {exc}".strip())


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped after the test."""
    schema = f"t_{secrets.token_hex(6)}"
    admin = _pg_admin_conn()
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None (embedded SQLite in the data dir) or a PostgreSQL URL on a fresh schema."""
    if request.param == "sqlite":
        yield None
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def store(db_url: str | None, tmp_path: Path) -> Iterator[Store]:
    """The store as `hub serve` opens it: catalog SLAs, working calendar, per-class dedup distances."""
    from hub.app import open_store
    from hub.settings import HubSettings

    s = open_store(HubSettings(db_url=db_url, data_dir=tmp_path / "hub"))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def hub_settings(tmp_path: Path) -> Any:
    from hub.settings import HubSettings, UnitConfig

    return HubSettings(
        data_dir=tmp_path / "hub", zmq_bind=None,
        units=[UnitConfig(id="district-east", cameras=["cam-1", "cam-2"]), UnitConfig(id="sanitation")],
        default_unit="sanitation",
    )


@pytest.fixture
def client(store: Store, hub_settings: Any) -> Iterator[Any]:
    """A TestClient on the app around `store` (no ZeroMQ, no background worker)."""
    from fastapi.testclient import TestClient

    from hub.app import create_app

    with TestClient(create_app(hub_settings, store=store, background=False)) as c:
        yield c


@pytest.fixture
def tokens(store: Store) -> dict[str, dict[str, str]]:
    """Authorization headers per role name."""
    from hub.auth.tokens import create_token
    from hub.cases.lifecycle import Role

    return {r.value: {"Authorization": f"Bearer {create_token(store, f'{r.value}-1', r)[1]}"} for r in Role}
