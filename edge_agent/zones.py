"""Zones: where on the image a rule looks. Config in normalised 0-1 coordinates, geometry in pixels.

A polygon zone answers "which boxes are inside" through an explicit anchor point of each box (the
bottom centre by default: where an object touches the ground), or, when `min_overlap` is set, through the
fraction of the box's area inside the polygon (a car over a thin tactile-paving strip). A line zone answers
"which way did a point cross". Pure numpy: no OpenCV, so rules and their tests stay light.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from protocol.catalog import ZoneKind

__all__ = ["Anchor", "Direction", "Zone", "ZoneConfig", "ZoneKind"]

Point = tuple[float, float]
MIN_AREA = 1e-5  # of the whole frame; below this a polygon is a sliver, not a zone


class Anchor(StrEnum):
    """The point of a box that decides zone membership (supervision's Position)."""

    BOTTOM_CENTER = "bottom_center"  # ground contact: parked vehicles, people standing
    CENTER = "center"  # objects seen from above or hanging
    TOP_CENTER = "top_center"
    BOTTOM_LEFT = "bottom_left"
    BOTTOM_RIGHT = "bottom_right"


class Direction(StrEnum):
    """Allowed travel across a line, in image terms: the side of the line the traffic moves toward."""

    ANY = "any"
    UP = "up"
    DOWN = "down"
    LEFT = "left"
    RIGHT = "right"


_DIRECTION_VECTORS = {
    Direction.UP: (0.0, -1.0), Direction.DOWN: (0.0, 1.0),
    Direction.LEFT: (-1.0, 0.0), Direction.RIGHT: (1.0, 0.0),
}


class ZoneConfig(BaseModel):
    """One zone of a camera: a polygon (area zones) or a line (crossing zones), normalised 0-1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="unique per camera; events carry it")
    kind: ZoneKind = ZoneKind.GENERIC
    polygon: list[Point] | None = Field(
        default=None, description="[[x, y], ...] >= 3 vertices, 0-1 of the frame, origin top-left")
    line: list[Point] | None = Field(default=None, description="[[x1, y1], [x2, y2]], 0-1 of the frame")
    allowed_direction: Direction = Field(
        default=Direction.ANY,
        description="line zones: the image direction traffic may cross in; crossing the other way is "
        "'against_direction'")
    anchor: Anchor = Anchor.BOTTOM_CENTER
    min_overlap: float | None = Field(
        default=None, gt=0, le=1,
        description="if set, a box is inside when at least this fraction of its area is in the polygon "
        "(the anchor is then ignored)")

    @field_validator("polygon", "line")
    @classmethod
    def _in_frame(cls, points: list[Point] | None) -> list[Point] | None:
        if points is None:
            return None
        for i, (x, y) in enumerate(points):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point {i} ({x}, {y}) is outside 0-1; coordinates are fractions of the "
                                 "frame width and height")
        return points

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, points: list[Point] | None) -> list[Point] | None:
        if points is None:
            return None
        if len(points) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(points)}")
        crossing = _self_intersection(points)
        if crossing is not None:
            raise ValueError(f"polygon edges {crossing[0]} and {crossing[1]} cross each other; list the "
                             "points in order around the area")
        area = abs(_signed_area(np.asarray(points, dtype=np.float64)))
        if area < MIN_AREA:
            raise ValueError(f"polygon is degenerate (area {area:.2g} of the frame): points are "
                             "collinear or repeated")
        return points

    @field_validator("line")
    @classmethod
    def _valid_line(cls, points: list[Point] | None) -> list[Point] | None:
        if points is None:
            return None
        if len(points) != 2:
            raise ValueError(f"a line has exactly 2 points, got {len(points)}")
        (x1, y1), (x2, y2) = points
        if np.hypot(x2 - x1, y2 - y1) < 1e-3:
            raise ValueError("line endpoints coincide")
        return points

    @model_validator(mode="after")
    def _one_shape(self) -> ZoneConfig:
        if (self.polygon is None) == (self.line is None):
            raise ValueError(f"zone {self.id!r}: give exactly one of `polygon` or `line`")
        if self.line is not None:
            if self.min_overlap is not None:
                raise ValueError(f"zone {self.id!r}: min_overlap applies to polygons, not lines")
            if self.allowed_direction is not Direction.ANY:
                (x1, y1), (x2, y2) = self.line
                dx, dy = x2 - x1, y2 - y1
                vx, vy = _DIRECTION_VECTORS[self.allowed_direction]
                # Crossing means moving along the line's normal; a direction along the line is meaningless.
                if abs(vx * -dy + vy * dx) / np.hypot(dx, dy) < 0.2:
                    raise ValueError(f"zone {self.id!r}: allowed_direction "
                                     f"{self.allowed_direction.value!r} runs along the line; pick one "
                                     "that crosses it")
        elif self.allowed_direction is not Direction.ANY:
            raise ValueError(f"zone {self.id!r}: allowed_direction applies to line zones only")
        return self

    @property
    def is_line(self) -> bool:
        return self.line is not None


@dataclass(frozen=True)
class Zone:
    """A zone in pixels for one frame size. Build with `Zone.from_config(config, frame_wh)`."""

    config: ZoneConfig
    frame_wh: tuple[int, int]
    points_px: np.ndarray  # (N, 2) float64: polygon vertices, or the 2 line endpoints

    @classmethod
    def from_config(cls, config: ZoneConfig, frame_wh: tuple[int, int]) -> Zone:
        w, h = frame_wh
        if w <= 0 or h <= 0:
            raise ValueError(f"frame_wh must be positive, got {frame_wh}")
        pts = np.asarray(config.line if config.is_line else config.polygon, dtype=np.float64)
        pts = pts * np.array([w, h], dtype=np.float64)
        pts.setflags(write=False)
        return cls(config, (int(w), int(h)), pts)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def kind(self) -> ZoneKind:
        return self.config.kind

    @property
    def is_line(self) -> bool:
        return self.config.is_line

    # --- polygon membership ---

    def anchors(self, xyxy: np.ndarray) -> np.ndarray:
        return anchor_points(xyxy, self.config.anchor)

    def contains_points(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: which (N, 2) pixel points lie inside the polygon (edges count as inside)."""
        self._require_polygon()
        return points_in_polygon(np.asarray(points, dtype=np.float64).reshape(-1, 2), self.points_px)

    def overlap_fraction(self, xyxy: np.ndarray) -> np.ndarray:
        """(N,) fraction of each box's area inside the polygon."""
        self._require_polygon()
        boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        out = np.zeros(len(boxes))
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            area = (x2 - x1) * (y2 - y1)
            if area > 0:
                clipped = _clip_polygon_to_box(self.points_px, (x1, y1, x2, y2))
                out[i] = abs(_signed_area(clipped)) / area if len(clipped) >= 3 else 0.0
        return out

    def trigger(self, xyxy: np.ndarray) -> np.ndarray:
        """(N,) bool membership of (N, 4) pixel boxes: anchor inside, or area overlap >= min_overlap."""
        boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        if self.config.min_overlap is not None:
            return self.overlap_fraction(boxes) >= self.config.min_overlap
        return self.contains_points(self.anchors(boxes))

    def contains_box(self, xyxy: tuple[float, float, float, float]) -> bool:
        return bool(self.trigger(np.asarray([xyxy]))[0])

    # --- line crossing ---

    def side(self, points: np.ndarray, deadband_px: float = 0.0) -> np.ndarray:
        """(N,) int: +1 / -1 for the side of the line each point is on, 0 within `deadband_px` of it.

        +1 is the side the line's normal (rotated 90° clockwise on screen from p1->p2) points to.
        """
        self._require_line()
        p1, p2 = self.points_px
        d = p2 - p1
        normal = np.array([-d[1], d[0]]) / np.hypot(*d)
        dist = (np.asarray(points, dtype=np.float64).reshape(-1, 2) - p1) @ normal
        return np.where(dist > deadband_px, 1, np.where(dist < -deadband_px, -1, 0))

    def allowed_side(self) -> int | None:
        """The side (+1/-1) that allowed traffic moves toward; None when any direction is allowed."""
        self._require_line()
        if self.config.allowed_direction is Direction.ANY:
            return None
        p1, p2 = self.points_px
        d = p2 - p1
        v = _DIRECTION_VECTORS[self.config.allowed_direction]
        return 1 if (-d[1] * v[0] + d[0] * v[1]) > 0 else -1

    def segment_crosses(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Whether the move a->b (pixels) passes through the line segment itself, not its extension."""
        self._require_line()
        p1, p2 = self.points_px
        return _segments_intersect(np.asarray(a, float), np.asarray(b, float), p1, p2)

    def _require_polygon(self) -> None:
        if self.is_line:
            raise ValueError(f"zone {self.id!r} is a line; membership needs a polygon zone")

    def _require_line(self) -> None:
        if not self.is_line:
            raise ValueError(f"zone {self.id!r} is a polygon; crossing needs a line zone")


# --- geometry helpers (pixels) ---------------------------------------------------------------------


def anchor_points(xyxy: np.ndarray, anchor: Anchor) -> np.ndarray:
    """(N, 2) anchor points of (N, 4) boxes."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    cx = (b[:, 0] + b[:, 2]) / 2
    if anchor is Anchor.BOTTOM_CENTER:
        return np.stack([cx, b[:, 3]], axis=1)
    if anchor is Anchor.CENTER:
        return np.stack([cx, (b[:, 1] + b[:, 3]) / 2], axis=1)
    if anchor is Anchor.TOP_CENTER:
        return np.stack([cx, b[:, 1]], axis=1)
    if anchor is Anchor.BOTTOM_LEFT:
        return np.stack([b[:, 0], b[:, 3]], axis=1)
    return np.stack([b[:, 2], b[:, 3]], axis=1)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool, even-odd ray casting; points on an edge count as inside."""
    x, y = points[:, 0:1], points[:, 1:2]
    px, py = polygon[:, 0], polygon[:, 1]
    qx, qy = np.roll(px, -1), np.roll(py, -1)
    # Ray to +x crosses edge (p->q) when y is between the endpoints' y (half-open) and x is left of it.
    straddles = (py > y) != (qy > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at_y = px + (y - py) * (qx - px) / (qy - py)
    inside = (np.sum(straddles & (x < x_at_y), axis=1) % 2) == 1
    return inside | _on_boundary(points, polygon)


def _on_boundary(points: np.ndarray, polygon: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    p = polygon[None, :, :]
    q = np.roll(polygon, -1, axis=0)[None, :, :]
    pt = points[:, None, :]
    d = q - p
    cross = d[..., 0] * (pt[..., 1] - p[..., 1]) - d[..., 1] * (pt[..., 0] - p[..., 0])
    dot = np.sum((pt - p) * d, axis=-1)
    within = (dot >= -tol) & (dot <= np.sum(d * d, axis=-1) + tol)
    return np.any((np.abs(cross) <= tol * np.maximum(1.0, np.sum(d * d, axis=-1))) & within, axis=1)


def _signed_area(poly: np.ndarray) -> float:
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return float(0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _clip_polygon_to_box(poly: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Sutherland-Hodgman clip of a polygon to an axis-aligned box."""
    x1, y1, x2, y2 = box
    out = [tuple(p) for p in poly]
    for axis, bound, keep_greater in ((0, x1, True), (0, x2, False), (1, y1, True), (1, y2, False)):
        if not out:
            break
        src, out = out, []
        for i, cur in enumerate(src):
            prev = src[i - 1]
            cur_in = cur[axis] >= bound if keep_greater else cur[axis] <= bound
            prev_in = prev[axis] >= bound if keep_greater else prev[axis] <= bound
            if cur_in != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cur_in:
                out.append(cur)
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def _orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))


def _segments_intersect(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> bool:
    """Proper or touching intersection of segments ab and cd."""
    o1, o2, o3, o4 = _orient(a, b, c), _orient(a, b, d), _orient(c, d, a), _orient(c, d, b)
    if (o1 > 0) != (o2 > 0) and (o3 > 0) != (o4 > 0) and o1 * o2 <= 0 and o3 * o4 <= 0:
        return True
    return (o1 == 0 and _on_segment(a, b, c)) or (o2 == 0 and _on_segment(a, b, d)) or (
        o3 == 0 and _on_segment(c, d, a)) or (o4 == 0 and _on_segment(c, d, b))


def _on_segment(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> bool:
    return bool(min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1]))


def _self_intersection(points: list[Point]) -> tuple[int, int] | None:
    """First pair of non-adjacent edges that cross, or None (O(n²), polygons are small)."""
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # adjacent through the closing edge
            if _segments_intersect(pts[i], pts[(i + 1) % n], pts[j], pts[(j + 1) % n]):
                return i, j
    return None

