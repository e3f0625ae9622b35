"""What the hub takes from the problem catalog: names, SLAs, Open311 services and dedup distances."""

from __future__ import annotations

from functools import lru_cache

from hub.cases.dedup import DedupPolicy
from protocol.catalog import Catalog, ProblemClass, default_catalog

# Vehicles park side by side: a neighbour 10 m away is another problem.
_NEAR = frozenset(
    {"illegal_car_parking", "illegal_bike_parking", "shared_bike_clutter", "vehicle_on_tactile_paving",
     "abandoned_car", "abandoned_bicycle"}
)
# Area problems: two cameras see one plume, crowd or flood from far apart.
_WIDE = frozenset(
    {"crowd_gathering", "construction_dust", "construction_noise", "fire_or_smoke", "waterlogging",
     "burning_garbage", "snow_ice_on_road"}
)
# Problems that persist for days before anyone reports them: the same-camera window is a week.
_SLOW = frozenset({"abandoned_car", "abandoned_bicycle", "illegal_structure", "accumulated_waste"})


def catalog() -> Catalog:
    return default_catalog()


def find(class_id: str) -> ProblemClass | None:
    cat = catalog()
    return cat.get(class_id) if class_id in cat else None


def sla_hours(class_id: str) -> float | None:
    cls = find(class_id)
    return cls.sla_hours if cls else None


def display_name(class_id: str) -> str:
    cls = find(class_id)
    return f"{cls.name_zh} {cls.name_en}" if cls else class_id


@lru_cache(maxsize=256)
def dedup_policy(class_id: str) -> DedupPolicy:
    radius = 10.0 if class_id in _NEAR else 50.0 if class_id in _WIDE else 15.0
    window = 7 * 86400.0 if class_id in _SLOW else 6 * 3600.0
    return DedupPolicy(radius_m=radius, window_s=window)
