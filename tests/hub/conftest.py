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

from hub.store import Store

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
    s = Store.open(db_url, tmp_path / "hub")
    try:
        yield s
    finally:
        s.close()
