import pytest

from tests.models.tfjs_tiny import write_tiny_tfjs


@pytest.fixture
def tiny_tfjs(tmp_path):
    return write_tiny_tfjs(tmp_path)
