"""Motion gating: start scan, motion boxes, stationary re-checks, idle scans, counting saved calls."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.motion import GateReason, MotionConfig, MotionDetector, MotionGate
from edge_agent.types import Track, TrackState


def scene(square_x: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(0)  # fixed texture, identical every call: a static camera
    img = rng.integers(90, 110, (480, 640, 3), dtype=np.uint8)
    if square_x is not None:
        img[200:280, square_x:square_x + 60] = 250
    return img


PARKED = Track(1, 2, "car", (10, 10, 100, 60), 0.8, TrackState.TRACKED, 0.0, 0.0, 0.0)


def test_static_scene_has_no_motion_and_a_moving_square_is_boxed() -> None:
    md = MotionDetector(MotionConfig())
    for _ in range(3):
        _, fraction, boxes = md.update(scene())
        assert fraction == 0.0 and len(boxes) == 0
    _, fraction, boxes = md.update(scene(square_x=300))
    assert fraction > 0 and len(boxes) == 1
    x1, y1, x2, y2 = boxes[0]
    assert x1 <= 300 <= x2 and x1 <= 360 <= x2 + 8 and y1 <= 200 and y2 >= 275


def test_sensor_noise_is_not_motion() -> None:
    md = MotionDetector(MotionConfig())
    rng = np.random.default_rng(1)
    base = scene().astype(np.int16)
    for _ in range(5):
        noisy = np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)
        _, fraction, boxes = md.update(noisy)
    assert len(boxes) == 0 and fraction == 0.0


def test_gate_scans_at_start_skips_static_and_detects_motion() -> None:
    gate = MotionGate(MotionConfig(recheck_interval_s=5.0, idle_scan_interval_s=30.0))
    assert gate.decide(scene(), 0.0, []).reason == GateReason.START
    assert gate.decide(scene(), 0.5, []).reason == GateReason.SKIP
    assert gate.decide(scene(300), 1.0, []).reason == GateReason.MOTION
    assert gate.frames == 3 and gate.detects == 2 and gate.saved == 1


def test_gate_rechecks_stationary_tracks_without_motion() -> None:
    gate = MotionGate(MotionConfig(recheck_interval_s=5.0))
    reasons = [gate.decide(scene(), t * 0.5, [PARKED]).reason for t in range(21)]  # 0 .. 10 s at 2 fps
    detected_at = [i * 0.5 for i, r in enumerate(reasons) if r != GateReason.SKIP]
    assert detected_at == [0.0, 5.0, 10.0]
    assert reasons[10] == GateReason.RECHECK
    assert gate.saved == 18


def test_gate_idle_scan_without_tracks() -> None:
    gate = MotionGate(MotionConfig(idle_scan_interval_s=30.0))
    reasons = [gate.decide(scene(), float(t), []).reason for t in range(61)]
    assert [i for i, r in enumerate(reasons) if r != GateReason.SKIP] == [0, 30, 60]
    assert reasons[30] == GateReason.IDLE_SCAN


def test_disabled_gate_detects_every_frame() -> None:
    gate = MotionGate(MotionConfig(enabled=False))
    reasons = [gate.decide(scene(), float(t), []).reason for t in range(4)]
    assert reasons == [GateReason.START] + [GateReason.DISABLED] * 3
    assert gate.saved == 0


@pytest.mark.parametrize("width", [64, 160, 320])
def test_boxes_are_in_frame_pixels_whatever_the_analysis_width(width: int) -> None:
    md = MotionDetector(MotionConfig(width=width))
    md.update(scene())
    _, _, boxes = md.update(scene(square_x=400))
    assert len(boxes) >= 1
    slack = 4 * 640 / width + 4  # blur + dilation grow the blob by a few analysis pixels
    assert boxes[:, 0].min() == pytest.approx(400, abs=slack)
    assert boxes[:, 2].max() == pytest.approx(460, abs=slack)


def test_real_footage_moving_pedestrians_trigger_motion(vtest_avi) -> None:
    import cv2

    cap = cv2.VideoCapture(str(vtest_avi))
    gate = MotionGate(MotionConfig())
    reasons = []
    for i in range(60):  # first 6 s, sampled at 2 fps
        ok, frame = cap.read()
        assert ok
        if i % 5 == 0:
            reasons.append(gate.decide(frame, i / 10, []).reason)
    cap.release()
    assert reasons[0] == GateReason.START
    assert reasons.count(GateReason.MOTION) >= len(reasons) - 2


def test_motion_outside_the_watched_zones_does_not_wake_the_detector() -> None:
    # A zone on the left, y 0.3-0.6; the square (y=200-280 of 480) moves at x=400-460, then at x=100-160.
    gate = MotionGate(MotionConfig(roi_margin=0.05), roi_norm=[(0.0, 0.3, 0.4, 0.6)])
    gate.decide(scene(), 0.0, [])
    assert gate.decide(scene(400), 0.5, []).reason == GateReason.SKIP
    assert gate.decide(scene(100), 1.0, []).reason == GateReason.MOTION  # x=100-160 is inside
