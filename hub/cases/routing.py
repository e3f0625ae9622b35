"""Unit routing: which unit (城管中队, contractor) a case is dispatched to, by the first matching rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.settings import UnitConfig


def route_unit(case: Mapping[str, Any], units: list[UnitConfig], default: str | None) -> str | None:
    """The first unit whose rule matches the case's camera, zone, class and place."""
    for unit in units:
        if unit.cameras and case.get("camera_id") not in unit.cameras:
            continue
        if unit.zones and case.get("zone") not in unit.zones:
            continue
        if unit.classes and case.get("class_id") not in unit.classes:
            continue
        if unit.bbox:
            lon, lat = case.get("lon"), case.get("lat")
            west, south, east, north = unit.bbox
            if lon is None or lat is None or not (west <= lon <= east and south <= lat <= north):
                continue
        return unit.id
    return default


def routing_note(case: Mapping[str, Any], units: list[UnitConfig]) -> str | None:
    """"no_place" when the case has no position while some unit is chosen by area: those rules could not
    apply, so the case went by class or to the default unit (the page says so); else None."""
    placed = case.get("lat") is not None or case.get("ground_crs") is not None or case.get("camera_id")
    return None if placed or not any(u.bbox for u in units) else "no_place"
