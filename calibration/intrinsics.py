"""Chessboard camera calibration (OpenCV): corners, sub-pixel refinement, calibrateCamera; YAML in/out.

`board` counts inner corners (columns x rows), as `findChessboardCorners` does: the OpenCV sample board is
9x6. `fix_aspect` holds fx/fy at 1 (CALIB_FIX_ASPECT_RATIO), which steadies the fit on few views.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

Progress = Callable[[Path, bool], None]  # (image, corners found)


@dataclass(frozen=True)
class Intrinsics:
    camera_matrix: np.ndarray  # 3x3
    dist_coeffs: np.ndarray  # (k1, k2, p1, p2, k3)
    image_wh: tuple[int, int]
    rms_px: float
    views: int
    board: tuple[int, int]
    square_mm: float
    fix_aspect: bool

    @property
    def fx(self) -> float:
        return float(self.camera_matrix[0, 0])

    @property
    def fy(self) -> float:
        return float(self.camera_matrix[1, 1])

    @property
    def cx(self) -> float:
        return float(self.camera_matrix[0, 2])

    @property
    def cy(self) -> float:
        return float(self.camera_matrix[1, 2])

    def to_dict(self) -> dict[str, object]:
        return {
            "image_width": self.image_wh[0], "image_height": self.image_wh[1],
            "camera_matrix": self.camera_matrix.round(6).tolist(),
            "dist_coeffs": self.dist_coeffs.ravel().round(8).tolist(),
            "rms_px": round(self.rms_px, 6), "views": self.views,
            "board": f"{self.board[0]}x{self.board[1]}", "square_mm": self.square_mm,
            "fix_aspect": self.fix_aspect,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Intrinsics:
        d = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        try:
            k = np.asarray(d["camera_matrix"], dtype=np.float64)
            if k.shape != (3, 3):
                raise ValueError(f"camera_matrix must be 3x3, got shape {k.shape}")
            return cls(k, np.asarray(d["dist_coeffs"], dtype=np.float64), (int(d["image_width"]),
                       int(d["image_height"])), float(d["rms_px"]), int(d["views"]), parse_board(d["board"]),
                       float(d["square_mm"]), bool(d["fix_aspect"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not an intrinsics file ({exc})") from None


def parse_board(text: str) -> tuple[int, int]:
    """'9x6' -> (9, 6) inner corners."""
    try:
        cols, rows = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"board must look like 9x6 (inner corners), got {text!r}") from None
    if cols < 2 or rows < 2:
        raise ValueError(f"board needs >= 2x2 inner corners, got {text!r}")
    return cols, rows


def find_corners(gray: np.ndarray, board: tuple[int, int]) -> np.ndarray | None:
    """(N, 1, 2) float32 sub-pixel inner corners, or None when the board is not found."""
    import cv2

    found, corners = cv2.findChessboardCorners(
        gray, board, flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE)
    if not found:
        return None
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 30, 1e-3)
    return cv2.cornerSubPix(gray, corners, (11, 11), (-1, -1), criteria)


def board_points(board: tuple[int, int], square_mm: float) -> np.ndarray:
    """(N, 3) float32 corner positions on the board plane (z = 0), in millimetres."""
    cols, rows = board
    grid = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2).astype(np.float32)
    return np.column_stack([grid * square_mm, np.zeros(len(grid), np.float32)]).astype(np.float32)


def calibrate(images: Sequence[str | Path], board: tuple[int, int] = (9, 6), square_mm: float = 25.0, *,
              fix_aspect: bool = False, progress: Progress | None = None) -> Intrinsics:
    """Calibrate from chessboard photos. Raises ValueError when fewer than 3 views show the board."""
    import cv2

    obj = board_points(board, square_mm)
    obj_pts, img_pts = [], []
    size: tuple[int, int] | None = None
    for p in map(Path, images):
        gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise ValueError(f"{p}: cannot read the image")
        wh = (gray.shape[1], gray.shape[0])
        if size is not None and wh != size:
            raise ValueError(f"{p}: size {wh} differs from the first image's {size}")
        size = wh
        corners = find_corners(gray, board)
        if progress:
            progress(p, corners is not None)
        if corners is not None:
            obj_pts.append(obj)
            img_pts.append(corners)
    if len(img_pts) < 3 or size is None:
        raise ValueError(f"the {board[0]}x{board[1]} board was found in {len(img_pts)} image(s); need >= 3")
    flags = cv2.CALIB_FIX_ASPECT_RATIO if fix_aspect else 0
    k0 = np.eye(3)  # with FIX_ASPECT_RATIO, OpenCV keeps fx/fy at k0's ratio (1)
    rms, k, dist, _, _ = cv2.calibrateCamera(obj_pts, img_pts, size, k0, None, flags=flags)
    return Intrinsics(k, dist.ravel(), size, float(rms), len(img_pts), board, square_mm, fix_aspect)
