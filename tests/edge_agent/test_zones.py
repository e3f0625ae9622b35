"""Zone configs reject bad shapes naming the field; zones answer membership and crossing in pixels."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.zones import Anchor, Zone, ZoneConfig

FRAME = (800, 600)
TOP_RIGHT = [[0.5, 0.0], [1.0, 0.0], [1.0, 0.5], [0.5, 0.5]]


def zone(**kw: object) -> Zone:
    return Zone.from_config(ZoneConfig.model_validate({"id": "z", **kw}), FRAME)


@pytest.mark.parametrize(("cfg", "field", "message"), [
    ({"polygon": [[0, 0], [1, 0]]}, "polygon", "at least 3 points"),
    ({"polygon": [[0, 0], [1.5, 0], [1, 1]]}, "polygon", "outside 0-1"),
    ({"polygon": [[0, 0], [0.5, 0.5], [1, 1]]}, "polygon", "degenerate"),
    ({"polygon": [[0, 0], [1, 0], [0, 1], [1, 1]]}, "polygon", "cross each other"),
    ({"line": [[0, 0.5], [1, 0.5], [1, 1]]}, "line", "exactly 2 points"),
    ({"polygon": TOP_RIGHT, "colour": "red"}, "colour", "Extra inputs"),
    ({"polygon": TOP_RIGHT, "kind": "parking"}, "kind", "Input should be"),
    ({}, "", "exactly one of `polygon` or `line`"),
    ({"line": [[0, 0.5], [1, 0.5]], "allowed_direction": "right"}, "", "runs along the line"),
    ({"polygon": TOP_RIGHT, "allowed_direction": "up"}, "", "line zones only"),
])
def test_config_errors_name_the_field(cfg: dict, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        ZoneConfig.model_validate({"id": "z", **cfg})
    err = info.value.errors()[0]
    assert ".".join(str(p) for p in err["loc"]).startswith(field)
    assert message in err["msg"]


def test_polygon_in_pixels_and_anchor_membership() -> None:
    z = zone(polygon=TOP_RIGHT, kind="no_parking")
    np.testing.assert_allclose(z.points_px, [[400, 0], [800, 0], [800, 300], [400, 300]])
    boxes = np.array([
        [500, 100, 600, 200],  # inside
        [100, 100, 200, 200],  # left of the zone
        [500, 250, 600, 350],  # box overlaps, but its bottom centre (550, 350) is below the zone
        [350, 200, 450, 300],  # bottom centre (400, 300) on the corner: inside
    ], dtype=float)
    assert z.trigger(boxes).tolist() == [True, False, False, True]
    assert zone(polygon=TOP_RIGHT, anchor="center").trigger(boxes).tolist() == [True, False, True, True]
    assert Anchor.BOTTOM_CENTER.value == "bottom_center"


def test_concave_polygon_membership() -> None:
    z = zone(polygon=[[0, 0], [1, 0], [1, 1], [0.5, 0.3], [0, 1]])  # a notch from below
    pts = np.array([[400, 500], [100, 100], [50, 500], [790, 500]], dtype=float)
    assert z.contains_points(pts).tolist() == [False, True, True, True]


def test_min_overlap_uses_box_area_inside() -> None:
    strip = zone(polygon=[[0, 0.5], [1, 0.5], [1, 0.55], [0, 0.55]], min_overlap=0.2)  # 30 px tall strip
    car_on = np.array([[100, 280, 200, 360]], float)  # 30 of 80 px rows on the strip: 37 %
    car_near = np.array([[300, 200, 400, 305]], float)  # 5 of 105 rows: 5 %
    np.testing.assert_allclose(strip.overlap_fraction(car_on), [30 / 80])
    assert strip.trigger(np.vstack([car_on, car_near])).tolist() == [True, False]


def test_line_sides_direction_and_segment() -> None:
    lane = zone(line=[[0.25, 0.5], [0.75, 0.5]], allowed_direction="down", kind="line")
    above, below, on = [400, 100], [400, 500], [400, 301]
    assert lane.side(np.array([above, below, on]), deadband_px=5).tolist() == [-1, 1, 0]
    assert lane.allowed_side() == 1  # moving down goes to the +1 side
    assert lane.segment_crosses(np.array(above), np.array(below))
    assert not lane.segment_crosses(np.array([700, 100]), np.array([700, 500]))  # beside the segment
    with pytest.raises(ValueError, match="is a line"):
        lane.trigger(np.zeros((1, 4)))
