"""The model registry (admin): register a model file, roll it out to canary cameras, judge, promote or roll
back, and the precision per class per model version (hub.releases.registry)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Path, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from hub import errors
from hub.api.deps import CurrentUser, StoreDep, access_policy, require
from hub.cases.lifecycle import Role
from hub.devices.hubkeys import HubSigningKey
from hub.devices.request_auth import DeviceRefused, authenticate_device
from hub.errors import Refused
from hub.releases import registry
from hub.releases.rollout import RolloutPolicy
from protocol.device_auth import DeviceAuthError

router = APIRouter(prefix="/models", tags=["models"], dependencies=[Depends(require())])
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
MAX_MODEL = 256 * 1024**2


class RolloutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    release_id: int = Field(ge=1)
    canary: list[str] = Field(min_length=1, max_length=64, description="cameras that run it first")
    rest: list[str] | None = Field(default=None, description="cameras that follow on promotion (default: all others)")
    policy: RolloutPolicy = Field(default_factory=RolloutPolicy)


class DeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cameras: list[str] = Field(min_length=1, max_length=2000)


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)


def _release(r: registry.Release) -> dict[str, Any]:
    return {"release_id": r.release_id, "name": r.name, "kind": r.kind, "sha256": r.sha256, "size": r.size,
            "backbone_sha256": r.backbone_sha256, "metrics": r.metrics, "signature": r.signature,
            "created_at": r.created_at, "created_by": r.created_by}


def _rollout(store: Any, r: registry.Rollout) -> dict[str, Any]:
    return {"rollout_id": r.rollout_id, "release_id": r.release_id, "previous_release_id": r.previous_release_id,
            "canary": r.canary, "rest": r.rest, "status": r.status, "policy": r.policy.model_dump(),
            "started_at": r.started_at, "decided_at": r.decided_at, "reason": r.reason,
            "audit": registry.audit_rows(store, r.rollout_id)}


@router.post("/releases", status_code=201, summary="Register a model file (few-shot head or ONNX)")
async def register(store: StoreDep, user: CurrentUser, file: UploadFile,
                   name: Annotated[str, Form(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")],
                   kind: Annotated[Literal["fewshot", "onnx"], Form()],
                   metrics: Annotated[str, Form(description="evaluation figures, JSON")] = "{}",
                   backbone_sha256: Annotated[str | None, Form(pattern=r"^[0-9a-f]{64}$")] = None) -> dict[str, Any]:
    content = await file.read(MAX_MODEL + 1)
    if len(content) > MAX_MODEL:
        raise Refused(errors.MODEL_TOO_LARGE, f"a model file may be at most {MAX_MODEL} bytes",
                      max_mb=MAX_MODEL // 2**20)
    try:
        figures = json.loads(metrics)
    except json.JSONDecodeError as exc:
        raise Refused(errors.INVALID, f"metrics: not JSON ({exc.msg})", field="metrics", kind="json") from exc
    if not isinstance(figures, dict):
        raise Refused(errors.INVALID, 'metrics: a JSON object of figures is needed, e.g. {"mAP50": 0.41}; '
                      f"got {metrics[:40]!r}", field="metrics", kind="json_object")
    try:
        release = registry.register(store, content, name=name, kind=kind, actor=user.actor,
                                    key=HubSigningKey.load_or_create(store.data_dir), metrics=figures,
                                    backbone_sha256=backbone_sha256)
    except registry.ReleaseError as exc:
        raise Refused(errors.RELEASE_CONFLICT, str(exc)) from exc
    return _release(release)


@router.get("/releases", summary="Registered releases")
def releases(store: StoreDep) -> list[dict[str, Any]]:
    return [_release(r) for r in sorted(registry.by_sha256(store).values(), key=lambda r: r.release_id)]


@router.get("/assignments", summary="Which camera runs which release")
def assignments(store: StoreDep) -> dict[str, int]:
    return registry.assignments(store)


@router.post("/releases/{release_id}/deploy", summary="Run a release on cameras at once (a first release)")
def deploy(release_id: RowId, body: DeployIn, store: StoreDep, user: CurrentUser) -> dict[str, int]:
    try:
        registry.deploy(store, release_id, body.cameras, user.actor)
    except LookupError as exc:
        raise Refused(errors.NOT_FOUND, str(exc)) from exc
    return registry.assignments(store)


@router.post("/rollouts", status_code=201, summary="Start a rollout on canary cameras")
def start(body: RolloutIn, store: StoreDep, user: CurrentUser) -> dict[str, Any]:
    try:
        started = registry.start_rollout(store, body.release_id, body.canary, user.actor, rest=body.rest,
                                         policy=body.policy)
    except LookupError as exc:
        raise Refused(errors.NOT_FOUND, str(exc)) from exc
    except registry.ReleaseError as exc:
        raise Refused(errors.RELEASE_CONFLICT, str(exc)) from exc
    return _rollout(store, started)


@router.get("/rollouts/{rollout_id}", summary="A rollout and its audit trail")
def show(rollout_id: RowId, store: StoreDep) -> dict[str, Any]:
    try:
        return _rollout(store, registry.rollout(store, rollout_id))
    except LookupError as exc:
        raise Refused(errors.NOT_FOUND, str(exc)) from exc


@router.post("/rollouts/{rollout_id}/judge", summary="Judge the canary now: promote, roll back or wait")
def judge(rollout_id: RowId, store: StoreDep, user: CurrentUser) -> dict[str, Any]:
    try:
        judged = registry.judge(store, rollout_id, actor=user.actor)
    except LookupError as exc:
        raise Refused(errors.NOT_FOUND, str(exc)) from exc
    return {"verdict": judged.verdict.value, "reason": judged.reason,
            **_rollout(store, registry.rollout(store, rollout_id))}


@router.post("/rollouts/{rollout_id}/rollback", summary="Roll back: every camera it moved runs the old release")
def rollback(rollout_id: RowId, body: RollbackIn, store: StoreDep, user: CurrentUser) -> dict[str, Any]:
    try:
        return _rollout(store, registry.rollback(store, rollout_id, user.actor, body.reason))
    except LookupError as exc:
        raise Refused(errors.NOT_FOUND, str(exc)) from exc
    except registry.ReleaseError as exc:
        raise Refused(errors.RELEASE_CONFLICT, str(exc)) from exc


# The 10% -> 90% curve is for the people who review too, not only admins.
stats_router = APIRouter(prefix="/models", tags=["models"], dependencies=[Depends(require(Role.REVIEWER))])


@stats_router.get("/stats", summary="Precision per class per model version (confirmed / reviewed cases)",
                  description="One row per (model version, class): cases whose first event came from that "
                  "version, reviewed (confirmed or void), pending, and precision = confirmed / reviewed. Versions "
                  "in registry order; a model not registered on the hub (the one in a camera's YAML) comes first, "
                  "named as its events name it.")
def stats(store: StoreDep) -> list[dict[str, Any]]:
    return registry.stats(store)


@access_policy
def signed_device(request: Request, store: StoreDep) -> str:
    """A router dependency: the request is signed by an enrolled, unrevoked device (protocol.device_auth)."""
    try:
        return authenticate_device(store, request.headers, request.method, request.url.path)
    except DeviceRefused as exc:
        raise Refused(errors.DEVICE_REFUSED, str(exc)) from exc
    except DeviceAuthError as exc:
        raise Refused(errors.DEVICE_AUTH, str(exc)) from exc


# Agents download detector files here (announced by url in the hub-signed model push); no user token.
device_router = APIRouter(prefix="/models", tags=["models"])


@device_router.get("/releases/{release_id}/file", response_class=FileResponse,
                   summary="A release's file, for a device it was pushed to (device-signed request)",
                   description="Headers X-CityEye-Device, X-CityEye-Time and X-CityEye-Signature (the device's "
                   "Ed25519 signature, protocol.device_auth). Range requests resume a broken download. The "
                   "device checks the bytes against the sha256 and size in the hub-signed push.",
                   responses={200: {"content": {"application/octet-stream": {}}}})
def release_file(release_id: RowId, store: StoreDep,
                 device_id: Annotated[str, Depends(signed_device)]) -> FileResponse:
    try:
        release = registry.release_for_device(store, release_id, device_id)
    except LookupError as exc:
        raise Refused(errors.NOT_FOUND, str(exc)) from exc
    return FileResponse(store.evidence_path(release.sha256), media_type="application/octet-stream",
                        filename=f"{release.name}-{release.release_id}.onnx", headers={"X-Sha256": release.sha256})
