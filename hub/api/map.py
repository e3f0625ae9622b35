"""The map page's data: the tile service from the hub settings (a bureau runs its own; none: the page
draws a plain grid in calibrated coordinates), the cameras placed by their calibration, and a
calibration fit for the page's calibration editor (the `calibrate homography` logic)."""

from __future__ import annotations

from typing import Annotated, Any

import cv2
import numpy as np
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from calibration.homography import fit_homography
from hub import errors
from hub.api.deps import READERS, SettingsDep, StoreDep, require
from hub.cases.lifecycle import Role
from hub.errors import Refused
from hub.fleet import configs

router = APIRouter(tags=["map"], dependencies=[Depends(require(*READERS))])
REFERENCE_WH = (1920, 1080)  # pixel errors are shown at this frame size, as `cityeye edge check-config` does


@router.get("/map", summary="Tile URL and attribution from the hub settings, and the cameras' positions")
def map_info(store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    with store.engine.connect() as conn:
        cals = configs.calibrations(conn)
    cameras = []
    for camera_id, cal in sorted(cals.items()):
        world = np.array([p["world"] for p in cal.get("points", [])], dtype=np.float64).reshape(-1, 2)
        if not len(world):
            continue
        x, y = world.mean(axis=0)  # the middle of the calibrated ground the camera watches
        cameras.append({"camera_id": camera_id, "device_id": cal["device_id"], "crs": cal.get("crs"),
                        "x": float(x), "y": float(y)})
    return {"tile_url": settings.map.tile_url, "attribution": settings.map.attribution, "cameras": cameras}


class CalibrationPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    image: tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]] = Field(
        description="[x, y] in 0-1 of the frame")
    world: tuple[float, float] = Field(description="[x, y] metres, or [lon, lat] for wgs84")


class FitRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    crs: str = Field(pattern=r"^(wgs84|local:[A-Za-z0-9_.-]{1,64})$")
    points: list[CalibrationPoint] = Field(min_length=4)
    ransac_px: float = Field(4.0, gt=0, le=50)
    max_error_m: float = Field(2.0, gt=0)


@router.post("/calibration/fit", dependencies=[Depends(require(Role.ADMIN))],
             summary="Fit the ground homography of picture/map point pairs and show its errors")
def calibration_fit(req: FitRequest) -> dict[str, Any]:
    image = np.array([p.image for p in req.points], dtype=np.float64) * np.array(REFERENCE_WH, dtype=np.float64)
    world = np.array([p.world for p in req.points], dtype=np.float64)
    try:
        fit = fit_homography(image, world, req.crs, ransac_px=req.ransac_px)
        off = np.linalg.norm(fit.world_to_image(world) - image, axis=1)
    except (ValueError, np.linalg.LinAlgError, cv2.error) as exc:
        raise Refused(errors.INVALID, f"calibration.points: no fit: {exc}", field="calibration.points",
                      kind="no_fit") from None
    if not (np.all(np.isfinite(off)) and np.isfinite(fit.error_m) and np.isfinite(fit.error_px)):
        raise Refused(errors.INVALID, "calibration.points: the fit is degenerate (points at infinity); spread "
                      "them over the ground", field="calibration.points", kind="degenerate")
    outliers = [i for i in range(len(req.points)) if not fit.inliers[i]]
    message = ""
    if outliers:
        message = f"points {[i + 1 for i in outliers]} do not fit the others (mis-typed or mis-paired?)"
    elif fit.error_m > req.max_error_m:
        message = f"the fit is off by {fit.error_m:.2f} m RMS on the ground, over max_error_m {req.max_error_m:g}"
    return {"ok": not message, "error_m": fit.error_m, "error_px": fit.error_px,
            "point_errors_px": [round(float(v), 2) for v in off], "inliers": fit.inliers.tolist(),
            "message": message, "reference_wh": REFERENCE_WH}
