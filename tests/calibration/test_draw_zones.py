"""Zones drawn on a snapshot land where their normalised coordinates say."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.zones import draw_zones


@dataclass
class Z:
    id: str
    polygon: list[list[float]] | None = None
    line: list[list[float]] | None = None
    kind: str = "generic"


def test_polygon_tints_inside_only_and_line_is_drawn() -> None:
    image = np.full((100, 200, 3), 128, np.uint8)
    out = draw_zones(image, [Z("np", polygon=[[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]]),
                             Z("lane", line=[[0, 0.25], [0.4, 0.25]], kind="line")])
    assert out.shape == image.shape and (image == 128).all()  # the input is untouched
    assert not np.array_equal(out[80, 160], image[80, 160])  # inside the polygon
    assert np.array_equal(out[80, 20], image[80, 20])  # outside every zone
    assert not np.array_equal(out[25, 40], image[25, 40])  # on the line


def test_cli_draws_a_camera_configs_zones(tmp_path, capsys) -> None:
    import cv2

    from cityeye.cli import main

    cfg = tmp_path / "cam.yaml"
    cfg.write_text(
        "id: cam-1\nsource: video.mp4\ntimezone: Asia/Shanghai\nzones:\n"
        "  - {id: np, kind: no_parking, polygon: [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]]}\n", encoding="utf-8")
    snap = tmp_path / "frame.jpg"
    cv2.imwrite(str(snap), np.full((120, 160, 3), 90, np.uint8))
    out = tmp_path / "zones.png"
    assert main(["calibrate", "draw-zones", "--config", str(cfg), "--image", str(snap), "--out", str(out)]) == 0
    assert "1 zone(s) of camera cam-1" in capsys.readouterr().out
    drawn = cv2.imread(str(out))
    assert drawn.shape == (120, 160, 3) and not np.array_equal(drawn[100, 140], drawn[10, 10])
