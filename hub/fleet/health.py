"""The fleet page's rows: each device and its cameras with the health their heartbeats report, whether
they are online, the agent's clock offset, and the config each camera runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from hub.fleet import configs
from hub.storage import schema


def fleet(conn: Connection, online_since: datetime) -> list[dict[str, Any]]:
    """Devices (by id) with their cameras; a device or camera is online when it reported at or after
    `online_since` (and the device is not revoked)."""
    cutoff = online_since.timestamp()
    summaries = configs.config_summaries(conn)
    cams: dict[str, list[dict[str, Any]]] = {}
    for r in conn.execute(select(schema.cameras).order_by(schema.cameras.c.camera_id)):
        online = bool(r.online and r.last_seen and r.last_seen.timestamp() >= cutoff)
        cams.setdefault(r.device_id, []).append({
            "camera_id": r.camera_id, "online": online, "last_seen": r.last_seen, "health": r.health,
            "config": summaries.get(r.camera_id, {})})
    devices = []
    for d in conn.execute(select(schema.devices).order_by(schema.devices.c.device_id)):
        health = d.health or {}
        devices.append({
            "device_id": d.device_id, "revoked": d.revoked, "last_seen": d.last_seen,
            "agent_version": d.agent_version, "health": health,
            "online": bool(not d.revoked and d.last_seen and d.last_seen.timestamp() >= cutoff),
            "clock_offset_s": clock_offset(d.last_seen, health.get("sent_at")),
            "cameras": cams.get(d.device_id, [])})
    return devices


def clock_offset(received: datetime | None, sent_at: str | None) -> float | None:
    """How far the agent's clock is behind the hub's (+) as its last heartbeat shows it (includes the
    transit and up to one heartbeat flush interval)."""
    if received is None or not sent_at:
        return None
    return round(received.timestamp() - datetime.fromisoformat(sent_at).timestamp(), 1)
