"""Labels on a case's frame (reviewers draw, move and relabel boxes, or say nothing is there), the label
names, and the labels file that teaches a model (hub.releases.labels)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from hub import errors
from hub.api.deps import CurrentUser, StoreDep, require
from hub.cases.lifecycle import Role
from hub.errors import Refused
from hub.releases import labels as service
from hub.releases import sampled

router = APIRouter(tags=["labels"], dependencies=[Depends(require(Role.REVIEWER))])


class BoxIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(max_length=64)
    box: Annotated[list[float], Field(min_length=4, max_length=4, description="x1, y1, x2, y2 in 0-1")]


class LabelsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    boxes: list[BoxIn] = Field(default_factory=list, max_length=200)
    nothing: bool = Field(default=False, description="nothing to report on this frame (a hard negative)")
    image_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                                     description="which snapshot of the case (default: the latest)")


class LabelsOut(BaseModel):
    case_id: str
    image_sha256: str
    camera_id: str | None
    nothing: bool
    boxes: list[BoxIn]
    source: str = Field(description="reviewer: saved labels; detector: the events' boxes to correct")
    labelled_by: str | None


class LabelNameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64, description="the label's id, as the model outputs it")
    name_zh: str = Field(min_length=1, max_length=64, description="what reviewers read (zh-CN)")
    name_en: str | None = Field(default=None, max_length=64, description="the English name (default: the id)")


class LabelOut(BaseModel):
    id: str
    name_zh: str | None = Field(description="None: added before display names; shown by its id")
    name_en: str
    source: str = Field(description="detector (COCO), catalog, or admin (added on this hub)")


def _out(found: service.FrameLabels) -> dict[str, Any]:
    return {"case_id": found.case_id, "image_sha256": found.image_sha256, "camera_id": found.camera_id,
            "nothing": found.nothing, "boxes": found.boxes, "source": found.source, "labelled_by": found.labelled_by}


@router.get("/cases/{case_id}/labels", response_model=LabelsOut, summary="The boxes on a case's frame")
def get_labels(case_id: str, store: StoreDep) -> dict[str, Any]:
    try:
        return _out(service.get_labels(store, case_id))
    except LookupError as exc:
        raise Refused(errors.FRAME_NOT_FOUND, str(exc)) from exc


@router.put("/cases/{case_id}/labels", response_model=LabelsOut, summary="Save the boxes on a case's frame")
def put_labels(case_id: str, body: LabelsIn, store: StoreDep, user: CurrentUser) -> dict[str, Any]:
    try:
        found = service.set_labels(store, case_id, [b.model_dump() for b in body.boxes], nothing=body.nothing,
                                   actor=user.actor, image_sha256=body.image_sha256)
    except LookupError as exc:
        raise Refused(errors.FRAME_NOT_FOUND, str(exc)) from exc
    except service.LabelError as exc:
        raise Refused(errors.LABEL_REFUSED, str(exc)) from exc
    return _out(found)


@router.get("/labels/names", response_model=list[str], summary="Labels a box may have")
def names(store: StoreDep) -> list[str]:
    return sorted(service.known_labels(store))


@router.get("/labels", response_model=list[LabelOut], summary="Labels a box may have, with their display names")
def labels(store: StoreDep) -> list[dict[str, Any]]:
    return [vars(x) for x in service.label_names(store)]


@router.post("/labels/names", status_code=204, summary="Add a label with its names, or rename an added one (admin)",
             dependencies=[Depends(require())])
def add_name(body: LabelNameIn, store: StoreDep, user: CurrentUser) -> None:
    try:
        service.add_label(store, body.name, user.actor, name_zh=body.name_zh, name_en=body.name_en)
    except service.LabelError as exc:
        raise Refused(errors.LABEL_REFUSED, str(exc)) from exc


@router.get("/labels/export", response_class=Response, summary="The labels file and its frames (ZIP)",
            description="labels.jsonl and frames/<sha256>.jpg: reviewers' labels, confirmed cases as positives, "
            "voided cases as hard negatives. Unzip and run `cityeye models dataset labels.jsonl --out DIR`.",
            responses={200: {"content": {"application/zip": {}}}})
def export(store: StoreDep) -> Response:
    return Response(service.export_zip(store), media_type="application/zip",
                    headers={"Content-Disposition": 'attachment; filename="labels.zip"'})


# ---- sampled frames with the detector's pre-labels (hub.releases.sampled) ----------------------------------

MAX_FRAME = 8 * 1024**2


class SampledOut(BaseModel):
    frame_id: str
    image_sha256: str
    camera_id: str
    taken_at: datetime
    boxes: list[BoxIn] = Field(description="what the editor draws: the reviewer's boxes, else the proposals")
    proposals: list[dict[str, Any]] = Field(description="the detector's boxes with their scores, as uploaded")
    proposed_by: dict[str, Any] | None
    nothing: bool
    source: str = Field(description="prelabel: the detector's proposals to correct; reviewer: saved labels")
    labelled_by: str | None


class SampledPage(BaseModel):
    frames: list[SampledOut]
    total: int


class SampledLabelsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    boxes: list[BoxIn] = Field(default_factory=list, max_length=200)
    nothing: bool = Field(default=False, description="nothing to report on this frame (a hard negative)")
    image_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="ignored (the editor's)")


def _sampled(frame: sampled.SampledFrame) -> dict[str, Any]:
    return {"frame_id": frame.frame_id, "image_sha256": frame.image_sha256, "camera_id": frame.camera_id,
            "taken_at": frame.taken_at, "boxes": frame.shown, "proposals": frame.proposals,
            "proposed_by": frame.proposed_by, "nothing": frame.nothing,
            "source": "reviewer" if frame.reviewed else "prelabel", "labelled_by": frame.labelled_by}


def _json_form(raw: str, field: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Refused(errors.INVALID, f"{field}: not JSON ({exc.msg})", field=field, kind="json") from exc


@router.post("/labels/frames", status_code=201, response_model=SampledOut,
             summary="Queue a sampled frame with the detector's boxes as pre-labels",
             description="What `cityeye models sample --prelabel MODEL --hub URL` sends: the JPEG, its camera and "
             "time, and the detector's boxes (proposals) that a reviewer corrects in the box editor.")
async def add_frame(store: StoreDep, user: CurrentUser, image: UploadFile,
                    camera_id: Annotated[str, Form(pattern=r"^[A-Za-z0-9_.-]{1,64}$")],
                    taken_at: Annotated[datetime, Form(description="ISO 8601 with an offset")],
                    proposals: Annotated[str, Form(description='[{"label", "box": [x1, y1, x2, y2], "score"}]')] = "[]",
                    proposed_by: Annotated[str | None, Form(description='{"name", "sha256"} of the detector')] = None,
                    ) -> dict[str, Any]:
    jpeg = await image.read(MAX_FRAME + 1)
    if len(jpeg) > MAX_FRAME:
        raise Refused(errors.UPLOAD_TOO_LARGE, f"image: at most {MAX_FRAME} bytes", max_mb=MAX_FRAME // 1024**2)
    if taken_at.tzinfo is None:
        raise Refused(errors.INVALID, "taken_at: give the time with its offset (e.g. +08:00)", field="taken_at",
                      kind="time_zone")
    boxes = _json_form(proposals, "proposals")
    model = _json_form(proposed_by, "proposed_by") if proposed_by else None
    if not isinstance(boxes, list):
        raise Refused(errors.INVALID, "proposals: a JSON list of boxes", field="proposals", kind="type")
    if model is not None and not (isinstance(model, dict) and isinstance(model.get("name"), str)):
        raise Refused(errors.INVALID, 'proposed_by: a JSON object {"name": ..., "sha256": ...}', field="proposed_by",
                      kind="type")
    try:
        frame = sampled.add_frame(store, jpeg, camera_id=camera_id, taken_at=taken_at, proposals=boxes,
                                  proposed_by=model, actor=user.actor)
    except service.LabelError as exc:
        raise Refused(errors.LABEL_REFUSED, str(exc)) from exc
    return _sampled(frame)


@router.get("/labels/frames", response_model=SampledPage, summary="Sampled frames: the labelling queue")
def list_frames(store: StoreDep, reviewed: Annotated[bool | None, Query(description="false: still to label")] = None,
                limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    frames, total = sampled.list_frames(store, reviewed=reviewed, limit=limit)
    return {"frames": [_sampled(f) for f in frames], "total": total}


@router.get("/labels/frames/{frame_id}", response_model=SampledOut, summary="A sampled frame and its boxes")
def get_frame(frame_id: str, store: StoreDep) -> dict[str, Any]:
    try:
        return _sampled(sampled.get_frame(store, frame_id))
    except LookupError as exc:
        raise Refused(errors.FRAME_NOT_FOUND, str(exc)) from exc


@router.put("/labels/frames/{frame_id}", response_model=SampledOut,
            summary="Save the corrected boxes on a sampled frame")
def put_frame(frame_id: str, body: SampledLabelsIn, store: StoreDep, user: CurrentUser) -> dict[str, Any]:
    try:
        frame = sampled.review_frame(store, frame_id, [b.model_dump() for b in body.boxes], nothing=body.nothing,
                                     actor=user.actor)
    except LookupError as exc:
        raise Refused(errors.FRAME_NOT_FOUND, str(exc)) from exc
    except service.LabelError as exc:
        raise Refused(errors.LABEL_REFUSED, str(exc)) from exc
    return _sampled(frame)
