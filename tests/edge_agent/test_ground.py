"""Ground position: a camera's calibration is fitted at start-up and every event carries the ground point
of its box's bottom centre; a bad calibration is a config error naming the field."""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.config import ConfigError, parse_camera_config
from edge_agent.ground import CameraGround, ground_for
from edge_agent.pipeline import Pipeline
from edge_agent.sinks import MemorySink
from tests.edge_agent.edge_fakes import ScriptedDetector, frames, textured_frame

W, H = 640, 480
# Ground metres -> normalised image: a 10 m x 20 m patch seen in perspective (near edge wide, far edge narrow).
WORLD_SQUARE = np.float32([[0, 0], [10, 0], [10, 20], [0, 20]])
IMAGE_SQUARE = np.float32([[0.1, 0.95], [0.9, 0.95], [0.6, 0.4], [0.4, 0.4]])  # horizon at y~0.22
WORLD_TO_NORM = cv2.getPerspectiveTransform(WORLD_SQUARE, IMAGE_SQUARE).astype(np.float64)


def apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    q = np.column_stack([pts, np.ones(len(pts))]) @ h.T
    return q[:, :2] / q[:, 2:3]


def calibration(world: np.ndarray | None = None, **extra: Any) -> dict[str, Any]:
    world = np.array([[0, 0], [10, 0], [10, 20], [0, 20], [5, 8], [2, 15]], float) if world is None else world
    image = apply(WORLD_TO_NORM, world)
    return {"crs": "local:plaza", **extra,
            "points": [{"image": [float(a), float(b)], "world": [float(x), float(y)]}
                       for (a, b), (x, y) in zip(image, world, strict=True)]}


def camera(cal: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": "cam-g", "source": "unused.mp4", "timezone": "UTC", "detect_fps": 2,
            "motion": {"enabled": False}, "evidence": {"clip": False},
            "zones": [{"id": "np", "kind": "no_parking", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
            "rules": [{"class_id": "illegal_car_parking", "zones": ["np"], "params": {"min_dwell_s": 2}}],
            **({"calibration": cal} if cal else {})}


CAR = (300.0, 250.0, 380.0, 330.0)  # pixels in a 640x480 frame


def test_events_carry_the_ground_point_of_the_box_bottom_centre(caplog: pytest.LogCaptureFixture) -> None:
    cfg = parse_camera_config(camera(calibration()))
    sink = MemorySink()
    with caplog.at_level(logging.INFO):
        pipe = Pipeline([cfg], ScriptedDetector([("car", CAR)]), sink, device_id="box-g")
        for f in frames("cam-g", textured_frame(W, H), 1_780_000_000.0, 5.0, 2.0):
            pipe.process([f])
        pipe.flush()
    opened = [e for e in sink.events if e.state.value == "opened"]
    assert len(opened) == 1
    ground = opened[0].ground
    assert ground is not None and ground.crs == "local:plaza"
    bottom_centre = np.array([[(CAR[0] + CAR[2]) / 2 / W, CAR[3] / H]])
    want = apply(np.linalg.inv(WORLD_TO_NORM), bottom_centre)[0]
    assert (ground.x, ground.y) == pytest.approx((want[0], want[1]), abs=0.01)
    assert ground.error_m is not None and ground.error_m < 0.01
    # Start-up reports the fit, then the refit at the real frame size, in px and m.
    text = caplog.text
    assert "ground calibration local:plaza: 6/6 inliers, reprojection RMS" in text and " m (at the 1920x1080" in text
    assert "ground calibration at 640x480" in text


def test_wgs84_calibration_gives_lon_lat() -> None:
    from calibration.homography import EnuFrame

    enu = EnuFrame(lon0=121.4737, lat0=31.2304)
    metres = np.array([[0, 0], [10, 0], [10, 20], [0, 20], [5, 8]], float)
    cal = calibration(metres)
    for p, lonlat in zip(cal["points"], enu.to_lonlat(metres), strict=True):
        p["world"] = [float(lonlat[0]), float(lonlat[1])]
    cal["crs"] = "wgs84"
    ground = ground_for(parse_camera_config(camera(cal)))
    assert isinstance(ground, CameraGround)
    point = ground(CAR, (W, H))
    assert point is not None and point.crs == "wgs84"
    bottom_centre = np.array([[(CAR[0] + CAR[2]) / 2 / W, CAR[3] / H]])
    want = enu.to_lonlat(apply(np.linalg.inv(WORLD_TO_NORM), bottom_centre))[0]
    assert (point.x, point.y) == pytest.approx((want[0], want[1]), abs=1e-6)


def test_box_above_the_horizon_has_no_ground_point() -> None:
    ground = ground_for(parse_camera_config(camera(calibration())))
    assert ground is not None
    assert ground((300.0, 0.0, 340.0, 0.1 * H), (W, H)) is None  # sky
    assert ground((300.0, 0.0, 340.0, 0.3 * H), (W, H)) is not None  # far, but ground


def test_without_calibration_events_have_no_ground() -> None:
    cfg = parse_camera_config(camera(None))
    sink = MemorySink()
    pipe = Pipeline([cfg], ScriptedDetector([("car", CAR)]), sink, device_id="box-g")
    for f in frames("cam-g", textured_frame(W, H), 1_780_000_000.0, 5.0, 2.0):
        pipe.process([f])
    pipe.flush()
    assert sink.events and all(e.ground is None for e in sink.events)


def test_mispaired_point_is_a_config_error_naming_it() -> None:
    cal = calibration()
    cal["points"][4]["world"] = [9.0, 2.0]  # a click paired with the wrong world point
    with pytest.raises(ConfigError) as err:
        parse_camera_config(camera(cal), file="cam.yaml")
    msg = str(err.value)
    assert "cam.yaml" in msg and "calibration.points[4]" in msg and "paired with the wrong world point" in msg


def test_inaccurate_fit_is_a_config_error() -> None:
    # Centimetres of noise in the world points; a 1 mm budget rejects the fit.
    cal = calibration(max_error_m=0.001, ransac_px=50)
    rng = np.random.default_rng(0)
    for p in cal["points"]:
        p["world"] = [v + float(rng.normal(0, 0.02)) for v in p["world"]]
    with pytest.raises(ConfigError, match=r"calibration\.points: .*over max_error_m"):
        parse_camera_config(camera(cal), file="cam.yaml")
