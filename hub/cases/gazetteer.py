"""The bureau's gazetteer: known street addresses and their lat/lon, from a CSV file it keeps (no geocoding
service, no internet). A report that gives only an address listed here is placed there.

File format: UTF-8 CSV, one `address,lat,lon` per line; a first line `address,lat,lon` is a header; lines
starting with # are comments. Addresses are compared as dedup compares them (hub.cases.dedup.address_key).
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from pathlib import Path

from hub.cases.dedup import address_key


@dataclass(frozen=True)
class Gazetteer:
    places: dict[str, tuple[float, float]]  # address key -> (lat, lon)

    def place(self, address: str | None) -> tuple[float, float] | None:
        """(lat, lon) of `address`, or None when it is not listed."""
        key = address_key(address)
        return self.places.get(key) if key else None


def _coordinate(text: str, name: str, limit: float, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {name} {text!r} is not a number") from None
    if not math.isfinite(value) or abs(value) > limit:
        raise ValueError(f"{where}: {name} {text!r} is outside -{limit:g}..{limit:g}")
    return value


def parse(path: Path) -> Gazetteer:
    """The gazetteer in `path`; ValueError naming the file and line of the first bad entry."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it: {exc}") from None
    places: dict[str, tuple[float, float]] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if number == 1 and [c.strip().lower() for c in row] == ["address", "lat", "lon"]:
            continue
        where = f"{path} line {number}"
        if len(row) != 3:
            raise ValueError(f"{where}: expected address,lat,lon (3 fields), got {len(row)}")
        key = address_key(row[0])
        if key is None:
            raise ValueError(f"{where}: the address is empty")
        if key in places:
            raise ValueError(f"{where}: address {row[0].strip()!r} is listed twice")
        places[key] = (_coordinate(row[1].strip(), "lat", 90, where), _coordinate(row[2].strip(), "lon", 180, where))
    return Gazetteer(places)


@functools.lru_cache(maxsize=4)
def _cached(path: Path, mtime_ns: int) -> Gazetteer:
    return parse(path)


def load(path: Path) -> Gazetteer:
    """The gazetteer in `path`, read again only when the file changed (the bureau may edit it while the hub runs)."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it: {exc}") from None
    return _cached(path, mtime)
