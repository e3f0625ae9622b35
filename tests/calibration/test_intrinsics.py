"""Chessboard calibration on OpenCV's own sample views lands close to OpenCV's reference calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calibration.intrinsics import Intrinsics, board_points, calibrate, parse_board
from cityeye.cli import main
from tests.conftest import shared_file

VIEWS = [f"calibration/left{i:02d}.jpg" for i in range(1, 15) if i != 10]


@pytest.fixture(scope="module")
def views() -> list[Path]:
    return [shared_file(v) for v in VIEWS]


def test_fixed_aspect_matches_opencv_reference(views: list[Path]) -> None:
    seen: list[bool] = []
    result = calibrate(views, (9, 6), 25.0, fix_aspect=True, progress=lambda _p, ok: seen.append(ok))
    assert seen == [True] * 13 and result.views == 13
    assert result.fx == result.fy
    assert abs(result.fx - 535.9) < 2.0
    assert abs(result.cx - 342.3) < 2.0 and abs(result.cy - 235.6) < 2.0
    assert 0.3 < result.rms_px < 0.5  # OpenCV's reference reports 0.39 px


def test_yaml_round_trip_and_cli(views: list[Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "cam.yml"
    assert main(["calibrate", "intrinsics", *map(str, views[:6]), "--board", "9x6", "--square-mm", "25",
                 "--out", str(out)]) == 0
    assert "RMS" in capsys.readouterr().out
    loaded = Intrinsics.load(out)
    assert loaded.views == 6 and loaded.board == (9, 6) and not loaded.fix_aspect
    assert 450 < loaded.fx < 650 and loaded.camera_matrix.shape == (3, 3)


def test_too_few_views_is_an_error(views: list[Path]) -> None:
    with pytest.raises(ValueError, match="found in 2 image"):
        calibrate(views[:2])


def test_board_helpers() -> None:
    assert parse_board("9x6") == (9, 6)
    with pytest.raises(ValueError, match="9x6"):
        parse_board("nine")
    pts = board_points((3, 2), 25.0)
    np.testing.assert_array_equal(pts[-1], [50.0, 25.0, 0.0])
