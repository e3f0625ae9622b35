"""The homography fit recovers a known mapping through noise and outliers, in metres and in lon/lat."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.homography import EnuFrame, fit_homography
from cityeye.cli import main

# A camera looking down a street: ground metres -> pixels (a real perspective, not an affinity).
TRUE_H = np.array([[42.0, -8.0, 640.0], [3.0, 6.0, 900.0], [0.004, -0.021, 1.0]])


def project(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.column_stack([pts, np.ones(len(pts))]) @ h.T
    return p[:, :2] / p[:, 2:3]


def ground_grid(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.column_stack([rng.uniform(-10, 10, n), rng.uniform(2, 30, n)])


def test_recovers_known_mapping_with_noise_and_outliers() -> None:
    rng = np.random.default_rng(7)
    world = ground_grid(rng, 30)
    image = project(TRUE_H, world) + rng.normal(0, 0.7, (30, 2))  # click noise
    bad = [3, 11, 19, 25]
    image[bad] += rng.uniform(80, 200, (4, 2))  # mis-paired points
    fit = fit_homography(image, world, "local:plaza", ransac_px=4.0)
    assert not fit.inliers[bad].any() and fit.inliers.sum() >= 24
    assert fit.error_px < 1.5
    probe = ground_grid(np.random.default_rng(1), 50)
    mapped = fit.image_to_world(project(TRUE_H, probe))
    assert np.abs(mapped - probe).max() < 0.25  # metres, across the whole street
    assert fit.error_m < 0.2
    x, y = fit.ground_of_box((600.0, 500.0, 700.0, float(project(TRUE_H, np.array([[0.0, 10.0]]))[0, 1])))
    assert np.isfinite(x) and np.isfinite(y)


def test_wgs84_points_fit_in_a_local_tangent_plane_and_map_back() -> None:
    rng = np.random.default_rng(3)
    enu = EnuFrame(lon0=121.4737, lat0=31.2304)  # Shanghai
    metres = ground_grid(rng, 12)
    lonlat = enu.to_lonlat(metres)
    np.testing.assert_allclose(enu.to_local(lonlat), metres, atol=1e-6)
    image = project(TRUE_H, metres) + rng.normal(0, 0.3, (12, 2))
    fit = fit_homography(image, lonlat, "wgs84")
    assert fit.inliers.all() and fit.error_m < 0.1
    back = fit.image_to_world(project(TRUE_H, metres))
    err_m = np.linalg.norm(enu.to_local(back) - metres, axis=1)
    assert err_m.max() < 0.15
    np.testing.assert_allclose(fit.world_to_image(lonlat), image, atol=2.0)


@pytest.mark.parametrize(("image", "world", "match"), [
    ([[0, 0], [1, 0], [0, 1]], [[0, 0], [1, 0], [0, 1]], ">= 4 point pairs"),
    ([[0, 0], [10, 10], [20, 20], [30, 30]], [[0, 0], [1, 0], [0, 1], [1, 1]], "image points are collinear"),
    ([[0, 0], [10, 0], [0, 10], [10, 10]], [[0, 0], [1, 0], [0, 1]], "4 image points but 3 world"),
])
def test_bad_point_sets_say_what_is_wrong(image: list, world: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_homography(np.array(image, float), np.array(world, float))


def test_cli_prints_fit_and_flags_outliers(tmp_path, capsys) -> None:
    rng = np.random.default_rng(5)
    world = ground_grid(rng, 8)
    image = project(TRUE_H, world) / np.array([1280.0, 1200.0])  # 0-1 of the frame, as camera configs
    image[2] = [0.05, 0.05]
    points = [{"image": i.tolist(), "world": w.tolist()} for i, w in zip(image, world, strict=True)]
    import yaml
    path = tmp_path / "points.yaml"
    path.write_text(yaml.safe_dump({"crs": "local:gate", "image_size": [1280, 1200], "points": points}))
    assert main(["calibrate", "homography", "--points", str(path)]) == 0
    out = capsys.readouterr().out
    assert "local:gate: 7/8 inliers" in out and out.count("OUTLIER") == 1
