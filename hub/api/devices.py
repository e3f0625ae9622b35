"""Cameras and devices with their online state (from heartbeats)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from hub.api.deps import READERS, SettingsDep, StoreDep, require
from hub.api.schemas import CameraOut, DeviceOut
from hub.cases import queries

router = APIRouter(tags=["devices"], dependencies=[Depends(require(*READERS))])


@router.get("/cameras", response_model=list[CameraOut], summary="Cameras and whether they are online")
def cameras(store: StoreDep, settings: SettingsDep) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return queries.list_cameras(conn, settings.camera_offline_after_s)


@router.get("/devices", response_model=list[DeviceOut], summary="Enrolled edge devices")
def devices(store: StoreDep, settings: SettingsDep) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return queries.list_devices(conn, settings.camera_offline_after_s)
