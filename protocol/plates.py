"""Chinese licence plates as both ends handle them: which texts are plates, how they are written,
their colours, and the masked form shown to roles that must not see the full number.

A plate is a province character, the issuing city's letter, then 5 characters (blue, yellow, white,
black plates) or 6 (green new-energy plates). Letters never include I or O (they read as 1 and 0).
The last character may be one of the special suffixes 挂 (trailer), 学 (driving school), 警 (police),
港 / 澳 (Hong Kong / Macao vehicles crossing into Guangdong). Plates are written with a middle dot
after the city letter: 皖A·73C39.
"""

from __future__ import annotations

import re
from enum import StrEnum

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I, no O
DIGITS = "0123456789"
SUFFIXES = "挂学警港澳"
SEPARATOR = "·"
# Detector labels of vehicles that carry a plate.
PLATE_LABELS = frozenset({"car", "truck", "bus", "motorcycle"})
# Every character a plate may hold: what an OCR read is restricted to.
ALPHABET = PROVINCES + LETTERS + DIGITS + SUFFIXES

_BODY = f"[{LETTERS}{DIGITS}]"
# Ordinary plate: 5 body characters, or 4 + a special suffix.
_ORDINARY = re.compile(f"^[{PROVINCES}][{LETTERS}](?:{_BODY}{{5}}|{_BODY}{{4}}[{SUFFIXES}])$")
# New-energy plate (green): 6 body characters; small cars start with D/F (or end with it for large ones).
_NEW_ENERGY = re.compile(f"^[{PROVINCES}][{LETTERS}](?:[DF]{_BODY}{{5}}|{_BODY}{{5}}[DF])$")


class PlateColour(StrEnum):
    BLUE = "blue"  # small cars
    YELLOW = "yellow"  # large vehicles, learner (学), trailers (挂)
    GREEN = "green"  # new-energy
    WHITE = "white"  # police, military
    BLACK = "black"  # foreign-owned, Hong Kong / Macao


def plain(text: str) -> str:
    """A plate's characters without separators or spaces, Latin letters upper-cased."""
    return "".join(ch for ch in text.upper() if ch not in f"{SEPARATOR}.·• -")


def is_valid(text: str) -> bool:
    """Whether `text` (with or without the dot) is a well-formed Chinese plate."""
    p = plain(text)
    return bool(_ORDINARY.match(p) or _NEW_ENERGY.match(p))


def is_new_energy(text: str) -> bool:
    return bool(_NEW_ENERGY.match(plain(text)))


# The timed still that shows the vehicle up close, its plate legible: personal data like the plate crop.
CLOSE_UP_STILL = "still_3.jpg"


def formatted(text: str) -> str:
    """The plate as written: 皖A·73C39. Raises ValueError when `text` is not a plate."""
    p = plain(text)
    if not is_valid(p):
        raise ValueError(f"not a Chinese licence plate: {text!r}")
    return f"{p[:2]}{SEPARATOR}{p[2:]}"


def masked(text: str) -> str:
    """The plate with two middle characters hidden (苏E·D51712 -> 苏E·D5**12): enough to tell two
    cases apart at a glance, not enough to identify the vehicle."""
    p = plain(text)
    if len(p) < 6:
        return "*" * len(p)
    body = p[2:]
    keep_head = 2 if len(body) >= 6 else 1
    hidden = len(body) - keep_head - 2
    return f"{p[:2]}{SEPARATOR}{body[:keep_head]}{'*' * hidden}{body[-2:]}"


def expected_colour(text: str) -> PlateColour | None:
    """The colour a plate's text implies, when it implies one (new-energy, police, HK/Macao, learner,
    trailer); None for ordinary plates, which may be blue or yellow."""
    p = plain(text)
    if is_new_energy(p):
        return PlateColour.GREEN
    last = p[-1:] if p else ""
    return {"警": PlateColour.WHITE, "港": PlateColour.BLACK, "澳": PlateColour.BLACK,
            "学": PlateColour.YELLOW, "挂": PlateColour.YELLOW}.get(last)
