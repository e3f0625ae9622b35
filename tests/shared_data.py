"""Paths to ../shared sample data, skipping the test with a reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


def shared_file(relative: str) -> Path:
    """A file from ../shared/fixtures, or skip the test saying what is missing."""
    path = SHARED_FIXTURES / relative
    if not path.is_file():
        pytest.skip(f"sample data {path} is absent (a clone without ../shared): nothing to test on")
    return path
