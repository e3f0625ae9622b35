"""Labels on a case's frame (reviewers draw, move and relabel boxes, or say nothing is there), the label
names, and the labels file that teaches a model (hub.releases.labels)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from hub import errors
from hub.api.deps import CurrentUser, StoreDep, require
from hub.cases.lifecycle import Role
from hub.errors import Refused
from hub.releases import labels as service

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
