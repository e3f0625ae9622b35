"""Running the district's cameras: fleet health, each camera's config (check, diff, save, audit) and
snapshots on demand. Saving stores a new version that the ingest link pushes to the camera's agent.

Configs are checked with the agent's own validation (`hub.fleet.check`), so the page refuses what the
box would refuse, each problem with its field path; the agent checks again when it gets the push.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from hub import errors
from hub.api.deps import READERS, STAFF, CurrentUser, SettingsDep, StoreDep, require
from hub.cases.lifecycle import Role
from hub.errors import Refused
from hub.fleet import check, configs, forms, health, retakes, snapshots
from hub.fleet.diff import config_changes
from hub.storage import db

router = APIRouter(tags=["fleet"], dependencies=[Depends(require(*READERS))])
admin = [Depends(require(Role.ADMIN))]


class ConfigBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: dict[str, Any] = Field(description="the camera config without `source` (that stays on the box)")


class SaveConfig(ConfigBody):
    base_version: int = Field(ge=0, description="the version the edit started from")


class Issue(BaseModel):
    path: str
    message: str


class CheckOut(BaseModel):
    issues: list[Issue]
    changes: list[dict[str, Any]]


@router.get("/fleet", summary="Devices and their cameras with the health their heartbeats report and the "
            "config each runs")
def fleet(store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    online_since = db.utcnow() - timedelta(seconds=settings.camera_offline_after_s)
    with store.engine.connect() as conn:
        return {"devices": health.fleet(conn, online_since)}


@router.get("/cameras/{camera_id}/config", summary="A camera's newest config version, what its agent runs, "
            "the last versions")
def camera_config(camera_id: str, store: StoreDep) -> dict[str, Any]:
    with store.engine.connect() as conn:
        try:
            out = configs.camera_config(conn, camera_id)
        except configs.UnknownCamera as exc:
            raise Refused(errors.CAMERA_UNKNOWN, str(exc), camera_id=camera_id) from None
    out["zone_kinds"] = check.zone_kinds()
    return out


@router.get("/fleet/rule-forms", summary="What the page's rule forms offer: camera classes with their rule type "
            "and defaults, and each rule type's params with their kind and bounds")
def rule_forms() -> dict[str, Any]:
    return forms.rule_forms(check.change_params())


def _check(store: Any, camera_id: str, body: dict[str, Any]) -> CheckOut:
    with store.engine.connect() as conn:
        try:
            current = configs.camera_config(conn, camera_id)
        except configs.UnknownCamera as exc:
            raise Refused(errors.CAMERA_UNKNOWN, str(exc), camera_id=camera_id) from None
    running = current["latest"]["body"]
    issues = check.check_config(body, running)
    return CheckOut(issues=[Issue(**i) for i in issues], changes=config_changes(running, body))


@router.post("/cameras/{camera_id}/config/check", response_model=CheckOut, dependencies=admin,
             summary="Check a config as the agent will (errors name the field) and list what it changes")
def check_config(camera_id: str, req: ConfigBody, store: StoreDep) -> CheckOut:
    return _check(store, camera_id, req.body)


@router.put("/cameras/{camera_id}/config", dependencies=admin,
            summary="Save a new config version; the camera's agent gets it over its link (now, or when it is back)")
def save_config(camera_id: str, req: SaveConfig, store: StoreDep, user: CurrentUser) -> dict[str, Any]:
    result = _check(store, camera_id, req.body)
    if result.issues:
        raise Refused(errors.CONFIG_HAS_ERRORS, {"message": "the config has errors; nothing was saved",
                                                 "issues": [i.model_dump() for i in result.issues]})
    try:
        return configs.save(store, camera_id, req.body, actor=user.actor, base_version=req.base_version)
    except configs.ConfigConflict as exc:
        raise Refused(errors.CONFIG_STALE, str(exc), camera_id=camera_id, latest=exc.latest) from None
    except configs.UnknownCamera as exc:
        raise Refused(errors.CAMERA_UNKNOWN, str(exc), camera_id=camera_id) from None


@router.get("/cameras/{camera_id}/config/audit", summary="Who changed the camera's config, what, and what its "
            "agent answered")
def config_audit(camera_id: str, store: StoreDep) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return configs.audit(conn, camera_id)


@router.get("/cameras/{camera_id}/reference-retakes", summary="Change-rule references the hub asked the camera's "
            "agent to re-take (a change case verified clear), newest first, with what the agent answered")
def reference_retakes(camera_id: str, store: StoreDep) -> list[dict[str, Any]]:
    return retakes.retakes_of(store, camera_id)


@router.post("/cameras/{camera_id}/snapshot", status_code=202, dependencies=[Depends(require(*STAFF))],
             summary="Ask the camera's agent for a fresh picture (GET the snapshot a moment later)")
def ask_snapshot(camera_id: str, store: StoreDep) -> dict[str, str]:
    if not snapshots.request(store, camera_id):
        raise Refused(errors.CAMERA_UNKNOWN, f"camera {camera_id!r} has not reported to this hub yet",
                      camera_id=camera_id)
    return {"status": "requested"}


@router.get("/cameras/{camera_id}/snapshot", response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}}}}, summary="The newest snapshot of the camera "
            "(X-Taken-At: when the agent took it)")
def get_snapshot(camera_id: str, store: StoreDep) -> Response:
    try:
        found = snapshots.SnapshotFiles(store.data_dir / "snapshots").get(camera_id)
    except ValueError as exc:
        raise Refused(errors.INVALID, str(exc), field="camera_id", kind="camera_id") from None
    if found is None:
        raise Refused(errors.SNAPSHOT_MISSING, f"no snapshot of camera {camera_id!r} yet: POST to ask its agent "
                      "for one", camera_id=camera_id)
    path, taken = found
    return FileResponse(path, media_type="image/jpeg", headers={"X-Taken-At": taken.isoformat(),
                                                                "Cache-Control": "no-store"})
