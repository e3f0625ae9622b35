"""The ZeroMQ ingest's configuration: where it listens (IngestConfig) and how it is tuned (IngestTuning).

Operators tune ingest in the hub settings (`ingest:` in hub.yaml, or CITYEYE_HUB_INGEST as JSON), which
hold an IngestTuning; `IngestConfig.from_settings` adds the endpoint, data dir and process count. This
module needs only pydantic: the settings import it without loading ZeroMQ.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.codec import Limits

if TYPE_CHECKING:
    from hub.settings import HubSettings


class IngestTuning(BaseModel):
    """Limits, threads and batching of each ingest process; every field can be set in the hub settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_media_bytes: int = Field(default=16 * 1024**2, gt=0, description="one media file")
    max_event_bytes: int = Field(default=48 * 1024**2, gt=0, description="all frames of one event")
    check_jpeg: bool = Field(default=True, description="check every JPEG's structure (hub.evidence.jpeg) first")
    zmq_heartbeat_ivl_ms: int = Field(default=15_000, gt=0)
    zmq_heartbeat_timeout_ms: int = Field(default=180_000, gt=0)
    device_refresh_s: float = Field(default=1.0, gt=0, description="how soon a revocation bites")
    poll_ms: int = Field(default=200, gt=0, le=1000)
    rcvhwm: int = Field(default=4, gt=0, description="messages libzmq reads ahead per peer; beyond, that peer's TCP "
                        "connection waits. Bounds what a reconnect storm holds in memory: agents x rcvhwm x event "
                        "size, whatever window the agents use")
    batch: int = Field(default=64, ge=1, le=1024, description="events received and checked per burst")
    workers: int = Field(default=4, ge=1, le=64, description="threads for hashes, signatures, JPEG checks (per "
                         "process; unset with several processes: the cores each has, see check_threads)")
    max_in_store: int = Field(default=256, ge=1, description="events being checked and stored at once (per "
                              "process); beyond, stop reading")
    max_in_store_bytes: int = Field(default=512 * 1024**2, gt=0, description="bytes of the events being checked and "
                                    "stored at once, per process (clips make events of megabytes); beyond, stop "
                                    "reading. The event that crosses it is still taken")
    heartbeat_flush_s: float = Field(default=1.0, gt=0, le=60, description="heartbeats are written together, at "
                                     "most this often (1,800 agents each every 10 s: one write a second, not 180)")


class IngestConfig(IngestTuning):
    """One ingest node: its endpoint, data dir, CURVE on or off, process count, and its tuning."""

    bind: str = Field(default="tcp://*:7755", description="ROUTER endpoint the agents connect to")
    data_dir: Path = Field(description="hub data dir; the CURVE key pair lives in keys/ under it")
    insecure: bool = Field(default=False, description="no CURVE/ZAP: anyone can connect. Lab use only")
    processes: int = Field(default=1, ge=1, le=64, description="ingest worker processes (hub.ingest.processes): "
                           "1 runs ingest in the hub's process; more share the port and spread over CPU cores")

    @classmethod
    def from_settings(cls, settings: HubSettings) -> IngestConfig:
        """The ingest the hub settings describe (zmq_bind must be set); tuning fields left unset stay unset,
        so their defaults (e.g. check_threads) still apply."""
        if settings.zmq_bind is None:
            raise ValueError("zmq_bind: not set, so the hub runs no ZeroMQ ingest")
        return cls(bind=settings.zmq_bind, data_dir=settings.data_dir, insecure=settings.insecure,
                   processes=settings.ingest_processes, **settings.ingest.model_dump(exclude_unset=True))

    @property
    def check_threads(self) -> int:
        """Threads checking events in each process: `workers` when set; by default, with several
        processes, the cores each has (more threads than that only trade the GIL back and forth)."""
        if self.processes == 1 or "workers" in self.model_fields_set:
            return self.workers
        return max(1, min(self.workers, (os.cpu_count() or 1) // self.processes))

    @property
    def limits(self) -> Limits:
        return Limits(max_media_bytes=self.max_media_bytes, max_event_bytes=self.max_event_bytes)

    @model_validator(mode="after")
    def _shared_port(self) -> IngestConfig:
        if self.processes > 1:
            try:
                tcp_host_port(self.bind)
            except ValueError as exc:
                raise ValueError(f"bind: {exc}") from None
        return self


def tcp_host_port(endpoint: str) -> tuple[str, int]:
    """(host, port) of a `tcp://HOST:PORT` endpoint: "*" is every IPv4 address, a port "*" or 0 any free one.
    Several ingest processes share one port (hub.ingest.processes), which needs exactly this form."""
    m = re.fullmatch(r"tcp://(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:/\[\]]+)):(?P<port>\d{1,5}|\*)", endpoint)
    if m is None:
        raise ValueError(f"several ingest processes share a TCP port: the endpoint must be tcp://HOST:PORT "
                         f"(HOST an address, a name or *), got {endpoint!r}")
    port = 0 if m["port"] == "*" else int(m["port"])
    if port > 65535:
        raise ValueError(f"port {port} of {endpoint!r} is out of range")
    host = m["v6"] or m["host"]
    return ("0.0.0.0" if host == "*" else host), port
