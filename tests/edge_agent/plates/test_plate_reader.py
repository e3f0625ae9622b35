"""The plate reader on real photos (../shared/fixtures/plates) and on made-up plates for colour."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.plates.colour import pixel_colour, plate_colour
from protocol.plates import PlateColour
from tests.shared_data import SHARED_FIXTURES

PLATES = SHARED_FIXTURES / "plates"
REPO = Path(__file__).resolve().parents[3]


def _plate(background_bgr: tuple[int, int, int], ink_bgr: tuple[int, int, int]) -> np.ndarray:
    """A 44x140 plate: a flat background with seven character-like strokes."""
    image = np.full((44, 140, 3), background_bgr, np.uint8)
    for i in range(7):
        x = 12 + i * 17
        cv2.rectangle(image, (x, 10), (x + 3, 34), ink_bgr, -1)
        cv2.rectangle(image, (x, 10), (x + 10, 13), ink_bgr, -1)
    return image


@pytest.mark.parametrize(("background", "ink", "expected"), [
    ((160, 60, 20), (240, 240, 240), PlateColour.BLUE),
    ((40, 12, 5), (70, 70, 60), PlateColour.BLUE),  # a blue plate at night
    ((240, 250, 180), (250, 250, 250), PlateColour.BLUE),  # over-exposed: cyan
    ((30, 190, 230), (20, 20, 20), PlateColour.YELLOW),
    ((235, 235, 235), (20, 20, 20), PlateColour.WHITE),
    ((25, 25, 25), (230, 230, 230), PlateColour.BLACK),
    ((80, 200, 60), (20, 20, 20), PlateColour.GREEN),
])
def test_pixel_colour_of_made_up_plates(background, ink, expected) -> None:
    assert pixel_colour(_plate(background, ink)) == expected


def test_green_needs_a_new_energy_number_and_the_number_decides_its_colour() -> None:
    green = _plate((80, 200, 60), (20, 20, 20))
    assert plate_colour(green, "苏E·D51712") == PlateColour.GREEN
    assert plate_colour(green, "皖A·73C39") == PlateColour.BLUE  # green pixels, ordinary number
    assert plate_colour(_plate((160, 60, 20), (240, 240, 240)), "沪A·1234警") == PlateColour.WHITE


def _labels() -> list[dict[str, str]]:
    path = PLATES / "labels.csv"
    if not path.is_file():
        pytest.skip(f"plate fixtures {path} are absent (a clone without ../shared): nothing to read")
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_cli_reads_every_labelled_plate_exactly_and_nothing_on_plateless_cars() -> None:
    labels = _labels()
    images = [str(PLATES / row["file"]) for row in labels]
    done = subprocess.run([sys.executable, "-m", "cityeye", "plates", "read", "--json", "--threads", "2", *images],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["image"] for line in lines] == images  # one object per image, in order
    for row, line in zip(labels, lines, strict=True):
        if not row["plate"]:
            assert line["plates"] == [], f"{row['file']}: a car without a plate read as {line['plates']}"
            continue
        texts = [p["text"] for p in line["plates"]]
        assert texts == [row["plate"]], f"{row['file']}: read {texts}, labelled {row['plate']}"
        plate = line["plates"][0]
        assert plate["colour"] == row["colour"], row["file"]
        assert 0.5 <= plate["score"] <= 1.0
        x1, y1, x2, y2 = plate["box"]
        h, w = cv2.imread(str(PLATES / row["file"]), cv2.IMREAD_COLOR).shape[:2]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


def test_cli_names_a_missing_image() -> None:
    done = subprocess.run([sys.executable, "-m", "cityeye", "plates", "read", "/nonexistent/car.jpg"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2
    assert "no such file: /nonexistent/car.jpg" in done.stderr
