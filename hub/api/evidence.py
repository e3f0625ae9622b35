"""Evidence files by SHA-256 (streamed), the latest original/annotated image of a case, the case's evidence
package (hub.evidence.package), uploads."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, UploadFile
from fastapi.responses import FileResponse, Response

from hub import errors
from hub.api.deps import READERS, STAFF, CurrentUser, SettingsDep, StoreDep, require
from hub.api.schemas import UploadOut
from hub.cases import plates
from hub.cases.lifecycle import CaseNotFound
from hub.errors import Refused
from hub.evidence import queries
from hub.evidence.files import EvidenceError
from hub.evidence.package import PackageTooLarge, UnknownCase, build_package
from protocol.package import MB

router = APIRouter(tags=["evidence"], dependencies=[Depends(require(*READERS))])
MAX_UPLOAD = 16 * 1024**2
Sha = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the file")]


@router.get("/evidence/{sha256}", response_class=FileResponse, summary="Download an evidence file",
            responses={200: {"content": {"image/jpeg": {}, "application/octet-stream": {}}}})
def download_route(sha256: Sha, store: StoreDep, user: CurrentUser) -> FileResponse:
    if not plates.may_see_plates(user.role) and queries.shows_plate(store, sha256):
        raise Refused(errors.PLATE_FORBIDDEN, f"the {user.role.value} role may not see licence plate close-ups "
                      "(personal data)", role=user.role.value)
    return download(sha256, store)


def download(sha256: str, store: StoreDep) -> FileResponse:
    path = store.evidence_path(sha256)
    if not path.is_file():
        raise Refused(errors.NOT_FOUND, f"no evidence file {sha256}")
    return FileResponse(path, media_type=queries.content_type(store, sha256), filename=f"{sha256}.bin",
                        headers={"Cache-Control": "private, max-age=31536000, immutable"})


@router.get("/cases/{case_id}/image", response_class=FileResponse, summary="The case's latest image",
            responses={200: {"content": {"image/jpeg": {}}}})
def case_image(case_id: str, store: StoreDep, kind: Literal["snapshot", "annotated", "crop"] = "snapshot"
               ) -> FileResponse:
    sha = queries.latest_media(store, case_id, kind)
    if sha is None:
        raise Refused(errors.IMAGE_MISSING, f"case {case_id!r} has no {kind} image", kind=kind)
    return download(sha, store)


@router.get("/cases/{case_id}/evidence-package", response_class=Response,
             summary="The case's evidence package: a ZIP anyone can verify offline",
             description="Signed manifests, signatures, event metadata and media of every edge event, the case "
             "record, the devices' public keys and the unsigned hand-uploaded photos, with the SHA-256 of every "
             "file in package.json, which the hub signs with its own Ed25519 key (package.json.ed25519). Verify "
             "with `cityeye evidence verify FILE --hub-key KEY` (`cityeye hub keys`). 413 when the package would "
             "exceed the hub setting evidence_package_max_mb (default 512).",
             responses={200: {"content": {"application/zip": {}}}, 404: {"description": "no such case"},
                        413: {"description": "the package would exceed the size limit"}})
def evidence_package(case_id: str, store: StoreDep, settings: SettingsDep, user: CurrentUser) -> Response:
    try:
        data = build_package(store, case_id, max_bytes=int(settings.evidence_package_max_mb * MB),
                             exported_by=user.actor, role=user.role)
    except UnknownCase as exc:
        raise CaseNotFound(case_id) from exc
    except PackageTooLarge as exc:
        raise Refused(errors.PACKAGE_TOO_LARGE, str(exc)) from exc
    except ValueError as exc:  # PackageError, or a badly set size limit: say which instead of a bare 500
        raise Refused(errors.PACKAGE_FAILED, f"cannot build the evidence package: {exc}") from exc
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{case_id}-evidence.zip"', "Cache-Control": "no-store"})


upload_router = APIRouter(tags=["evidence"], dependencies=[Depends(require(*STAFF))])


@upload_router.post("/evidence", response_model=UploadOut, status_code=201, summary="Upload a photo (feedback)")
async def upload(file: UploadFile, store: StoreDep) -> dict[str, object]:
    data = await file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise Refused(errors.UPLOAD_TOO_LARGE, f"file larger than {MAX_UPLOAD} bytes", max_mb=MAX_UPLOAD // 2**20)
    if not data.startswith(b"\xff\xd8"):
        raise Refused(errors.UPLOAD_NOT_JPEG, "only JPEG photos are accepted (file does not start with a JPEG marker)")
    try:
        sha = store.evidence.put(data)
    except EvidenceError as exc:
        raise Refused(errors.INVALID, str(exc), field="file", kind="evidence") from exc
    return {"sha256": sha, "size": len(data)}
