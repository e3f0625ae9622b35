"""Image <-> ground mapping: a plane homography fitted with RANSAC to >= 4 point pairs.

World points are either local metres ("local:<site>") or WGS-84 lon/lat ("wgs84"). Lon/lat is not a
plane, so those points are first projected to a local east-north tangent plane (ENU, metres) around their
centroid; the fit happens there and mapped points go back to lon/lat. The RANSAC threshold is in image
pixels (the world is mapped into the image), because click error lives in the image.

Pure numpy apart from `cv2.findHomography`, imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# WGS-84 ellipsoid
_A = 6378137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)


def _geodetic_to_ecef(lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    n = _A / np.sqrt(1 - _E2 * np.sin(lat) ** 2)
    return np.stack([n * np.cos(lat) * np.cos(lon), n * np.cos(lat) * np.sin(lon),
                     n * (1 - _E2) * np.sin(lat)], axis=-1)


def _ecef_to_geodetic(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    lon = np.arctan2(y, x)
    p = np.hypot(x, y)
    lat = np.arctan2(z, p * (1 - _E2))
    for _ in range(5):  # converges to < 1e-12 rad in a few steps near the surface
        n = _A / np.sqrt(1 - _E2 * np.sin(lat) ** 2)
        h = p / np.cos(lat) - n
        lat = np.arctan2(z, p * (1 - _E2 * n / (n + h)))
    return np.degrees(lon), np.degrees(lat)


@dataclass(frozen=True)
class EnuFrame:
    """A local east-north-up tangent plane at (lon0, lat0) on the ellipsoid."""

    lon0: float
    lat0: float

    def _rotation(self) -> np.ndarray:
        lon, lat = np.radians(self.lon0), np.radians(self.lat0)
        return np.array([
            [-np.sin(lon), np.cos(lon), 0.0],
            [-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)],
            [np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)],
        ])

    def to_local(self, lonlat: np.ndarray) -> np.ndarray:
        """(N, 2) lon/lat degrees -> (N, 2) east/north metres."""
        ll = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
        d = _geodetic_to_ecef(ll[:, 0], ll[:, 1]) - _geodetic_to_ecef(np.array(self.lon0), np.array(self.lat0))
        return (d @ self._rotation().T)[:, :2]

    def to_lonlat(self, en: np.ndarray) -> np.ndarray:
        """(N, 2) east/north metres on the tangent plane -> (N, 2) lon/lat degrees."""
        e = np.asarray(en, dtype=np.float64).reshape(-1, 2)
        enu = np.column_stack([e, np.zeros(len(e))])
        xyz = enu @ self._rotation() + _geodetic_to_ecef(np.array(self.lon0), np.array(self.lat0))
        lon, lat = _ecef_to_geodetic(xyz)
        return np.column_stack([lon, lat])


def _apply(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    p = np.column_stack([np.asarray(points, dtype=np.float64).reshape(-1, 2), np.ones(len(points))])
    q = p @ h.T
    return q[:, :2] / q[:, 2:3]


@dataclass(frozen=True)
class GroundHomography:
    """A fitted image <-> ground mapping.

    world_to_image: 3x3 from plane metres (local, or ENU around `enu`) to pixels. error_px: RMS
    reprojection error of the inliers in the image; error_m: RMS error of the inliers on the ground.
    """

    world_to_image_h: np.ndarray
    crs: str
    enu: EnuFrame | None
    inliers: np.ndarray  # (N,) bool over the input pairs
    error_px: float
    error_m: float

    @property
    def image_to_world_h(self) -> np.ndarray:
        return np.linalg.inv(self.world_to_image_h)

    def image_to_world(self, points_px: np.ndarray) -> np.ndarray:
        """(N, 2) pixels -> (N, 2) world: metres for local, lon/lat degrees for wgs84."""
        plane = _apply(self.image_to_world_h, np.asarray(points_px, dtype=np.float64).reshape(-1, 2))
        return self.enu.to_lonlat(plane) if self.enu else plane

    def world_to_image(self, world: np.ndarray) -> np.ndarray:
        plane = self.enu.to_local(world) if self.enu else np.asarray(world, dtype=np.float64).reshape(-1, 2)
        return _apply(self.world_to_image_h, plane)

    def ground_of_box(self, xyxy: Sequence[float]) -> tuple[float, float]:
        """World position of where a box touches the ground: the middle of its bottom edge."""
        x1, _, x2, y2 = xyxy
        w = self.image_to_world(np.array([[(x1 + x2) / 2, y2]]))[0]
        return float(w[0]), float(w[1])

    def summary(self) -> str:
        return (f"{self.crs}: {int(self.inliers.sum())}/{len(self.inliers)} inliers, reprojection RMS "
                f"{self.error_px:.2f} px / {self.error_m:.3f} m")


def fit_homography(image_px: np.ndarray, world: np.ndarray, crs: str = "local:site", *,
                   ransac_px: float = 4.0) -> GroundHomography:
    """Fit from (N, 2) pixel points and (N, 2) world points (metres, or lon/lat for crs "wgs84").

    Raises ValueError when there are fewer than 4 pairs, they are degenerate (collinear), or RANSAC finds
    fewer than 4 inliers.
    """
    import cv2

    img = np.asarray(image_px, dtype=np.float64).reshape(-1, 2)
    wld = np.asarray(world, dtype=np.float64).reshape(-1, 2)
    if len(img) != len(wld):
        raise ValueError(f"{len(img)} image points but {len(wld)} world points")
    if len(img) < 4:
        raise ValueError(f"a homography needs >= 4 point pairs, got {len(img)}")
    enu = None
    if crs == "wgs84":
        if np.any(np.abs(wld[:, 1]) > 90) or np.any(np.abs(wld[:, 0]) > 180):
            raise ValueError("wgs84 world points are [lon, lat] degrees; some are out of range")
        enu = EnuFrame(float(wld[:, 0].mean()), float(wld[:, 1].mean()))
        plane = enu.to_local(wld)
    else:
        plane = wld
    for name, pts in (("image", img), ("world", plane)):
        if _rank(pts) < 2:
            raise ValueError(f"the {name} points are collinear; spread them over the ground plane")
    h, mask = cv2.findHomography(plane, img, cv2.RANSAC, ransac_px)
    if h is None or mask is None or int(mask.sum()) < 4:
        raise ValueError("no consistent homography: check that image and world points are paired in order")
    inliers = mask.ravel().astype(bool)
    # Refit on the inliers by least squares: RANSAC's model comes from its best minimal sample.
    h, _ = cv2.findHomography(plane[inliers], img[inliers], 0)
    err_px = np.linalg.norm(_apply(h, plane[inliers]) - img[inliers], axis=1)
    err_m = np.linalg.norm(_apply(np.linalg.inv(h), img[inliers]) - plane[inliers], axis=1)
    return GroundHomography(h, crs, enu, inliers, float(np.sqrt(np.mean(err_px ** 2))),
                            float(np.sqrt(np.mean(err_m ** 2))))


def _rank(points: np.ndarray) -> int:
    centred = points - points.mean(axis=0)
    s = np.linalg.svd(centred, compute_uv=False)
    return int(np.sum(s > 1e-9 * max(1.0, float(s[0]))))
