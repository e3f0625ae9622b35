"""Schema migrations: a versioned, append-only list applied at open under a lock, recorded in `schema_version`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    case,
    inspect,
    literal,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine

from hub.storage.db import begin_write, is_postgres, utcnow
from hub.storage.schema import (
    api_tokens,
    calendar_days,
    camera_config_state,
    camera_configs,
    cases,
    config_audit,
    device_keys,
    devices,
    events,
    frame_labels,
    label_names,
    media_fetches,
    metadata,
    model_assignments,
    model_audit,
    model_pushes,
    model_releases,
    model_rollouts,
    reference_retakes,
    sampled_frames,
    schema_version,
    sessions,
    sign_in_attempts,
    users,
)


def _v1_initial(conn: Connection) -> None:
    metadata.create_all(conn)


def _v2_dedup_indexes(conn: Connection) -> None:
    # checkfirst: on a fresh database step 1 has already made them (it creates the current metadata).
    for name in ("ix_cases_dedup_camera", "ix_cases_dedup_ground"):
        next(ix for ix in cases.indexes if ix.name == name).create(conn, checkfirst=True)


def _v3_device_keys(conn: Connection) -> None:
    """The key history, seeded with each enrolled device's current key (its enrolled_at onwards; a revoked
    device's key ends at revoked_at). Keys replaced before this step were overwritten and are gone."""
    device_keys.create(conn, checkfirst=True)  # a fresh database: step 1 made it
    d, k = devices, device_keys
    missing = select(
        d.c.device_id, d.c.sign_public_key, d.c.curve_public_key, d.c.enrolled_at,
        case((d.c.revoked, d.c.revoked_at), else_=None),
        case((d.c.revoked, literal("revoked")), else_=None),
    ).where(~select(k.c.id).where(k.c.device_id == d.c.device_id).exists())
    conn.execute(k.insert().from_select(
        ["device_id", "sign_public_key", "curve_public_key", "valid_from", "valid_until", "ended"], missing))


def _v4_statistics_indexes(conn: Connection) -> None:
    """Indexes that /stats reads instead of the tables (a 30-day range at 100k cases scanned every event
    row, payload included). ix_cases_stats starts with created_at: it replaces ix_cases_created."""
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_cases_created")
    for ix in (*cases.indexes, *events.indexes):
        if ix.name in ("ix_cases_stats", "ix_cases_closed", "ix_events_observed"):
            ix.create(conn, checkfirst=True)


def _v5_accounts_and_undo(conn: Connection) -> None:
    """People's accounts and sessions; transitions remember what an undoable action changed."""
    users.create(conn, checkfirst=True)
    sessions.create(conn, checkfirst=True)
    if "undo_values" not in {c["name"] for c in inspect(conn).get_columns("case_transitions")}:
        conn.exec_driver_sql("ALTER TABLE case_transitions ADD COLUMN undo_values JSON")


def _v6_model_registry(conn: Connection) -> None:
    """The model registry (hub.releases): releases, assignments, rollouts, their audit, model pushes, frame labels."""
    for table in (model_releases, model_assignments, model_rollouts, model_audit, model_pushes, frame_labels,
                  label_names):
        table.create(conn, checkfirst=True)


def _v7_plates(conn: Connection) -> None:
    """Licence plates on cases (parking evidence): four columns and their index; no-ops when present."""
    have = {c["name"] for c in inspect(conn).get_columns("cases")}
    for column in ("plate", "plate_colour", "plate_score", "plate_corrected"):
        if column not in have:
            kind = cases.c[column].type.compile(conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE cases ADD COLUMN {column} {kind}")
    next(ix for ix in cases.indexes if ix.name == "ix_cases_plate").create(conn, checkfirst=True)


def _v8_camera_configs(conn: Connection) -> None:
    """Camera configs run from the hub (versions, agent state, audit) and the bureau's calendar days."""
    for table in (camera_configs, camera_config_state, config_audit, calendar_days):
        table.create(conn, checkfirst=True)


def _v9_token_expiry(conn: Connection) -> None:
    """API tokens get an optional expiry and their last-used time; no-ops when present."""
    have = {c["name"] for c in inspect(conn).get_columns("api_tokens")}
    for column in ("expires_at", "last_used_at"):
        if column not in have:
            kind = api_tokens.c[column].type.compile(conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE api_tokens ADD COLUMN {column} {kind}")


def _v10_reference_retakes(conn: Connection) -> None:
    """Change-rule reference retakes sent to the agents (hub.fleet.retakes)."""
    reference_retakes.create(conn, checkfirst=True)


def _v11_addresses_and_media(conn: Connection) -> None:
    """Reports with an address (and maybe no place): address columns and their dedup index; photos linked
    by Open311 clients fetched in the background. No-ops when present."""
    have = {c["name"] for c in inspect(conn).get_columns("cases")}
    for column in ("address", "address_key"):
        if column not in have:
            kind = cases.c[column].type.compile(conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE cases ADD COLUMN {column} {kind}")
    next(ix for ix in cases.indexes if ix.name == "ix_cases_dedup_address").create(conn, checkfirst=True)
    media_fetches.create(conn, checkfirst=True)


def _add_missing_columns(conn: Connection, table: Any, columns: tuple[str, ...]) -> None:
    have = {c["name"] for c in inspect(conn).get_columns(table.name)}
    for column in columns:
        if column not in have:
            kind = table.c[column].type.compile(conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column} {kind}")


def _v12_idle_sessions_shared_rate_label_names(conn: Connection) -> None:
    """Sessions' last use (idle timeout), sign-in attempts shared by every hub process, and the display
    names of admin-added labels; no-ops when present."""
    _add_missing_columns(conn, sessions, ("last_seen_at",))
    _add_missing_columns(conn, label_names, ("name_zh", "name_en"))
    sign_in_attempts.create(conn, checkfirst=True)


def _v13_sampled_frames(conn: Connection) -> None:
    """Sampled frames with the detector's pre-labels, waiting for a reviewer (hub.releases.sampled)."""
    sampled_frames.create(conn, checkfirst=True)


# Append-only: (version, name, step). Never edit a released step; add a new one. Step 1 creates the
# metadata as it is NOW, so every later step must also be a no-op on a fresh database (checkfirst, IF NOT
# EXISTS): a fresh and an upgraded database then end with the same schema (tests/hub/storage/test_store.py checks it).
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial schema", _v1_initial),
    (2, "dedup candidate indexes on cases", _v2_dedup_indexes),
    (3, "device key history", _v3_device_keys),
    (4, "statistics indexes", _v4_statistics_indexes),
    (5, "user accounts, sessions, undo", _v5_accounts_and_undo),
    (6, "model registry, rollouts, model pushes and frame labels", _v6_model_registry),
    (7, "licence plates on cases", _v7_plates),
    (8, "camera configs from the hub, bureau calendar days", _v8_camera_configs),
    (9, "API token expiry and last use", _v9_token_expiry),
    (10, "change-rule reference retakes", _v10_reference_retakes),
    (11, "addresses on cases, Open311 media fetches", _v11_addresses_and_media),
    (12, "session idle time, shared sign-in attempts, label display names", _v12_idle_sessions_shared_rate_label_names),
    (13, "sampled frames with pre-labels to review", _v13_sampled_frames),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
_MIGRATION_LOCK = 0x43495459  # "CITY": serialises concurrent migrators on PostgreSQL


def migrate(engine: Engine) -> int:
    """Apply pending migrations; returns the schema version now in force."""
    with begin_write(engine) as conn:
        if is_postgres(conn):
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        schema_version.create(conn, checkfirst=True)
        done = {row[0] for row in conn.execute(schema_version.select().with_only_columns(schema_version.c.version))}
        for version, name, step in MIGRATIONS:
            if version in done:
                continue
            step(conn)
            conn.execute(schema_version.insert().values(version=version, name=name, applied_at=utcnow()))
        current = max(done | {v for v, _, _ in MIGRATIONS})
    if current > SCHEMA_VERSION:
        raise RuntimeError(f"database schema {current} is newer than this hub ({SCHEMA_VERSION}); upgrade it")
    return current
