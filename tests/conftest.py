"""Shared test fixtures: the sample data in ../shared/fixtures (skipped with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shared_data import SHARED_FIXTURES, shared_file

__all__ = ["SHARED_FIXTURES", "shared_file"]


@pytest.fixture
def dog_jpg() -> Path:
    return shared_file("images/dog.jpg")


@pytest.fixture
def person_jpg() -> Path:
    return shared_file("images/person.jpg")


@pytest.fixture
def vtest_avi() -> Path:
    return shared_file("video/vtest.avi")
