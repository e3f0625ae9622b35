"""The device registry: enrolled devices, their signing-key history, heartbeats and cameras (DeviceTables,
a part of the store), and the protocol enrolment, ZAP and ingest need from it (DeviceRegistry)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from hub.storage import db, schema
from hub.storage.core import StoreBase, StoreError
from protocol.messages import Heartbeat


class DeviceRecord(Protocol):
    device_id: str
    curve_public_key: str
    sign_public_key: str
    revoked: bool


class DeviceRegistry(Protocol):
    """What enrolment, ZAP and ingest need from the store (hub.storage.store.Store)."""

    def add_device(self, device_id: str, curve_public_key: str, sign_public_key: str, *,
                   replace: bool = False) -> Any: ...
    def revoke_device(self, device_id: str) -> Any: ...
    def get_device(self, device_id: str) -> DeviceRecord | None: ...
    def list_devices(self) -> Iterable[DeviceRecord]: ...


class UnknownDevice(StoreError):
    pass


@dataclass(frozen=True)
class Device:
    device_id: str
    curve_public_key: str
    sign_public_key: str
    revoked: bool
    enrolled_at: datetime
    last_seen: datetime | None
    agent_version: str | None = None
    health: dict[str, Any] | None = None


class DeviceTables(StoreBase):
    """The store's device registry: enrolment, revocation, the key history, heartbeats and cameras (a part
    of hub.storage.store.Store)."""

    def add_device(self, device_id: str, curve_public_key: str, sign_public_key: str, *,
                   replace: bool = False) -> None:
        """Enrol a device; an existing one is refused unless `replace` (re-enrolment with new keys).

        The key history (device_keys) keeps the old keys: `replace` ends the key in force now, so evidence
        it signed still verifies with it."""
        def tx(conn: Connection) -> None:
            d, k = schema.devices, schema.device_keys
            now = db.utcnow()
            exists = conn.execute(select(d.c.device_id).where(d.c.device_id == device_id)).first()
            values = {"curve_public_key": curve_public_key, "sign_public_key": sign_public_key,
                      "revoked": False, "revoked_at": None, "enrolled_at": now}
            if exists and not replace:
                raise StoreError(f"device {device_id!r} is already enrolled (revoke it or pass replace=True)")
            if exists:  # the devices row first: on PostgreSQL its row lock queues a concurrent re-enrolment
                conn.execute(update(d).where(d.c.device_id == device_id).values(**values))
                conn.execute(update(k).where(k.c.device_id == device_id, k.c.valid_until.is_(None))
                             .values(valid_until=now, ended="replaced"))
            else:
                conn.execute(d.insert().values(device_id=device_id, **values))
            conn.execute(k.insert().values(device_id=device_id, sign_public_key=sign_public_key,
                                           curve_public_key=curve_public_key, valid_from=now))

        self.write(tx)

    def revoke_device(self, device_id: str) -> None:
        """Revoke a device: ingest refuses it from now on, and its key in force ends now (key history)."""
        def tx(conn: Connection) -> None:
            d, k = schema.devices, schema.device_keys
            now = db.utcnow()
            done = conn.execute(
                update(d).where(d.c.device_id == device_id).values(revoked=True, revoked_at=now)
            )
            if done.rowcount == 0:
                raise UnknownDevice(f"no enrolled device {device_id!r}")
            conn.execute(update(k).where(k.c.device_id == device_id, k.c.valid_until.is_(None))
                         .values(valid_until=now, ended="revoked"))

        self.write(tx)

    def get_device(self, device_id: str) -> Device | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.devices).where(schema.devices.c.device_id == device_id)).first()
        return _device(row) if row else None

    def list_devices(self) -> list[Device]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(schema.devices).order_by(schema.devices.c.device_id)).all()
        return [_device(r) for r in rows]

    def device_keys(self, device_id: str) -> list[DeviceKey]:
        """Every signing key the device has had, oldest first, with the period the hub accepted it."""
        k = schema.device_keys
        with self.engine.connect() as conn:
            rows = conn.execute(select(k).where(k.c.device_id == device_id).order_by(k.c.valid_from, k.c.id)).all()
        return [DeviceKey(**{c: r._mapping[c] for c in _DEVICE_KEY_COLUMNS}) for r in rows]

    def record_heartbeat(self, hb: Heartbeat) -> None:
        self.record_heartbeats([hb])

    def record_heartbeats(self, heartbeats: Sequence[Heartbeat]) -> None:
        """Device and per-camera health and online state, for many heartbeats in one transaction (a
        device's latest wins); devices must be enrolled to be tracked."""
        latest = {hb.device_id: hb for hb in heartbeats}
        if not latest:
            return
        now = db.utcnow()
        devices = [{"b_id": hb.device_id, "b_seen": now, "b_version": hb.agent_version,
                    "b_health": hb.model_dump(mode="json", exclude={"cameras", "v"})} for hb in latest.values()]
        cameras = {cam.camera_id: {"camera_id": cam.camera_id, "device_id": hb.device_id, "online": cam.online,
                                   "last_seen": now, "health": cam.model_dump(mode="json")}
                   for hb in latest.values() for cam in hb.cameras}  # one row per camera: an upsert touches each once
        d = schema.devices

        def tx(conn: Connection) -> None:
            conn.execute(update(d).where(d.c.device_id == bindparam("b_id")).values(
                last_seen=bindparam("b_seen"), agent_version=bindparam("b_version"), health=bindparam("b_health")),
                devices)
            rows = list(cameras.values())
            for i in range(0, len(rows), 500):  # under SQLite's bound-parameter limit
                stmt = self._insert(conn, schema.cameras).values(rows[i:i + 500])
                conn.execute(stmt.on_conflict_do_update(index_elements=["camera_id"], set_={
                    c: stmt.excluded[c] for c in ("device_id", "online", "last_seen", "health")}))

        self.write(tx)


def _device(row: Any) -> Device:
    m = row._mapping
    return Device(
        device_id=m["device_id"], curve_public_key=m["curve_public_key"], sign_public_key=m["sign_public_key"],
        revoked=bool(m["revoked"]), enrolled_at=m["enrolled_at"], last_seen=m["last_seen"],
        agent_version=m["agent_version"], health=m["health"],
    )


@dataclass(frozen=True)
class DeviceKey:
    """One row of the key history (schema.device_keys): in force from valid_from until valid_until (None: now)."""

    device_id: str
    sign_public_key: str
    curve_public_key: str
    valid_from: datetime
    valid_until: datetime | None
    ended: str | None  # "replaced", "revoked"


_DEVICE_KEY_COLUMNS = ("device_id", "sign_public_key", "curve_public_key", "valid_from", "valid_until", "ended")
