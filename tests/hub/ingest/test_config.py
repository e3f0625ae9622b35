"""Ingest tuning comes from the hub settings: what an operator sets under `ingest:` reaches the ingest node."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.ingest.config import IngestConfig
from hub.settings import HubSettings, ValidationError


def test_ingest_fields_set_in_the_hub_settings_reach_the_ingest_config(tmp_path: Path) -> None:
    settings = HubSettings(data_dir=tmp_path, zmq_bind="tcp://127.0.0.1:0", ingest_processes=2,
                           ingest={"rcvhwm": 8, "max_in_store": 100, "max_in_store_bytes": 1024**2})
    config = IngestConfig.from_settings(settings)
    assert (config.rcvhwm, config.max_in_store, config.max_in_store_bytes) == (8, 100, 1024**2)
    assert (config.bind, config.data_dir, config.processes) == ("tcp://127.0.0.1:0", tmp_path, 2)
    assert "workers" not in config.model_fields_set  # unset stays unset: check_threads splits the cores
    workers = IngestConfig.from_settings(settings.model_copy(update={"ingest": settings.ingest.model_copy(
        update={"workers": 3})}))
    assert workers.check_threads == 3


def test_ingest_settings_from_the_environment_and_errors_that_name_the_field(tmp_path: Path) -> None:
    settings = HubSettings.from_env({"CITYEYE_HUB_INGEST": '{"batch": 16, "poll_ms": 50}'}, data_dir=tmp_path)
    assert (IngestConfig.from_settings(settings).batch, IngestConfig.from_settings(settings).poll_ms) == (16, 50)
    with pytest.raises(ValidationError, match=r"ingest\.rcvhw\b"):
        HubSettings(ingest={"rcvhw": 8})
    with pytest.raises(ValidationError, match=r"ingest\.batch"):
        HubSettings(ingest={"batch": 0})
    with pytest.raises(ValueError, match="zmq_bind"):
        IngestConfig.from_settings(HubSettings(data_dir=tmp_path, zmq_bind=None))
