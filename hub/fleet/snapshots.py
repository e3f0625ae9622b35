"""Snapshots on demand: the page asks for a fresh picture of a camera, the ingest link asks the agent,
the agent answers with its newest frame as a JPEG, kept here as one file per camera (the zone editor
draws on it). The file's modification time is when the agent took the frame."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from hub.evidence.jpeg import jpeg_error
from hub.storage import db, schema
from protocol.push import Snapshot

_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class SnapshotAsk:
    device_id: str
    camera_id: str


class SnapshotFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, camera_id: str) -> Path:
        if not _SAFE.match(camera_id) or camera_id.startswith("."):
            raise ValueError(f"camera id {camera_id!r} is not a valid id")
        return self.folder / f"{camera_id}.jpg"

    def put(self, snap: Snapshot, jpeg: bytes) -> None:
        if snap.error:
            raise ValueError(f"the agent could not take it: {snap.error}")
        problem = jpeg_error(jpeg)
        if problem:
            raise ValueError(f"not a usable JPEG: {problem}")
        path = self.path(snap.camera_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(jpeg)
        taken = (snap.taken_at or datetime.now(UTC)).timestamp()
        os.utime(tmp, (taken, taken))
        os.replace(tmp, path)

    def get(self, camera_id: str) -> tuple[Path, datetime] | None:
        path = self.path(camera_id)
        try:
            taken = path.stat().st_mtime
        except FileNotFoundError:
            return None
        return path, datetime.fromtimestamp(taken, UTC)


def request(store: Any, camera_id: str) -> bool:
    """Ask for a fresh snapshot of `camera_id`; False when no agent has reported that camera."""
    s = schema.camera_config_state

    def tx(conn: Connection) -> bool:
        return bool(conn.execute(update(s).where(s.c.camera_id == camera_id)
                                 .values(snapshot_requested_at=db.utcnow())).rowcount)

    return store.write(tx)


def due_requests(conn: Connection, devices: Any) -> list[SnapshotAsk]:
    s = schema.camera_config_state
    rows = conn.execute(select(s.c.device_id, s.c.camera_id).where(
        s.c.device_id.in_(list(devices)), s.c.snapshot_requested_at.is_not(None),
        s.c.snapshot_sent_at.is_(None) | (s.c.snapshot_sent_at < s.c.snapshot_requested_at))).all()
    return [SnapshotAsk(r.device_id, r.camera_id) for r in rows]


def mark_requested(store: Any, asks: list[SnapshotAsk]) -> None:
    if not asks:
        return
    s = schema.camera_config_state

    def tx(conn: Connection) -> None:
        for ask in asks:
            conn.execute(update(s).where(s.c.camera_id == ask.camera_id).values(snapshot_sent_at=db.utcnow()))

    store.write(tx)
