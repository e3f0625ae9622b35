"""A camera's ground position: its `calibration` fitted to a homography, boxes mapped to GroundPoints.

Calibration image points are fractions of the frame; the fit happens in pixels (`point × frame size`)
because RANSAC's threshold and the reprojection error are about click error, which lives in pixels.
A live source's frame size is only known at its first frame, so the config check fits at a reference
size (a bad fit is a config error there: `config.check_calibration_fits`) and `CameraGround` refits,
cheaply and once, for each real frame size it meets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from calibration.homography import GroundHomography
from edge_agent.config import REFERENCE_WH, CalibrationConfig, CameraConfig
from protocol.messages import GroundPoint

log = logging.getLogger(__name__)


class CameraGround:
    """`GroundFn` of one camera: (box xyxy in pixels, frame (w, h)) -> GroundPoint of its bottom centre
    (`Position.BOTTOM_CENTER`: where a standing object touches the ground), or None when that point
    is not on the calibrated ground (above the horizon)."""

    def __init__(self, camera_id: str, calibration: CalibrationConfig) -> None:
        self.camera_id = camera_id
        self.calibration = calibration
        self._fits: dict[tuple[int, int], tuple[GroundHomography, float] | None] = {}

    def _fit(self, frame_wh: tuple[int, int]) -> tuple[GroundHomography, float] | None:
        """The fit for this frame size and the sign of the ground side (cached); None, logged once,
        if it fails at this size."""
        if frame_wh not in self._fits:
            entry = None
            try:
                fit = self.calibration.fit(frame_wh)
                # Pixels on the ground side of the horizon share the sign of the homogeneous scale
                # of the calibration points; a box beyond it would map "behind" the camera.
                side = float(np.sign(np.mean(_scale(fit, self.calibration.image_px(frame_wh)))))
                entry = (fit, side)
                log.info("camera %s: ground calibration at %dx%d: %s", self.camera_id, *frame_wh, fit.summary())
            except ValueError as exc:
                log.error("camera %s: ground calibration fails at %dx%d (%s); events carry no ground position",
                          self.camera_id, *frame_wh, exc)
            self._fits[frame_wh] = entry
        return self._fits[frame_wh]

    def __call__(self, xyxy: Sequence[float], frame_wh: tuple[int, int]) -> GroundPoint | None:
        entry = self._fit(frame_wh)
        if entry is None:
            return None
        fit, side = entry
        x1, _, x2, y2 = xyxy
        if _scale(fit, np.array([[(x1 + x2) / 2, y2]]))[0] * side <= 0:
            return None
        x, y = fit.ground_of_box(xyxy)
        if not (np.isfinite(x) and np.isfinite(y)):
            return None
        return GroundPoint(crs=fit.crs, x=x, y=y, error_m=round(fit.error_m, 3))


def _scale(fit: GroundHomography, points_px: np.ndarray) -> np.ndarray:
    """Homogeneous scale of image->plane for (N, 2) pixels."""
    p = np.column_stack([points_px, np.ones(len(points_px))])
    return p @ fit.image_to_world_h[2]


def ground_for(cfg: CameraConfig) -> CameraGround | None:
    """The camera's ground mapping, or None without calibration; logs the fit's error at start-up."""
    if cfg.calibration is None:
        return None
    fit = cfg.calibration.fit(REFERENCE_WH)
    log.info("camera %s: ground calibration %s (at the %dx%d reference size; refitted at the real frame size)",
             cfg.id, fit.summary(), *REFERENCE_WH)
    return CameraGround(cfg.id, cfg.calibration)
