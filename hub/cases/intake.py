"""The non-camera intakes, IoT sensors and people: their request models and their path into dedup.

Both go through the same burst ingest as edge events (Store.ingest_observation), so there is one dedup path.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from hub import errors
from hub.api.schemas import ApiTime, In
from hub.cases.dedup import Observation
from hub.cases.lifecycle import TransitionInputError
from hub.ingest.burst import IngestResult
from hub.storage import db
from hub.storage.store import Store
from protocol.messages import GroundPoint, MediaKind, MediaRef, NormBox, ProblemState

CLASS_ID = r"^[a-z0-9_]{2,64}$"


# ---- other intakes: IoT sensors and people ---------------------------------------------------------


class Intake(In):
    class_id: str = Field(pattern=CLASS_ID, description="problem catalog id")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    observed_at: ApiTime | None = Field(default=None, description="default: now")
    description: str | None = Field(default=None, max_length=4000)

    @field_validator("observed_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("observed_at must carry a time zone (e.g. 2026-11-23T09:00:00Z)")
        return v


class SensorAlert(Intake):
    """An IoT alert (e.g. methane over threshold); repeats from one sensor join one case."""

    sensor_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    alert_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$", description="idempotency key per sensor")
    state: ProblemState = ProblemState.OPENED
    value: float | None = None
    threshold: float | None = None
    measure_unit: str | None = Field(default=None, max_length=16)


class ManualReport(Intake):
    """A report filed by a person (inspector, citizen app); joins a case within the class distance."""

    photo_sha256: list[str] = Field(default_factory=list, max_length=8, description="uploaded evidence")


def ingest_sensor(store: Store, alert: SensorAlert) -> IngestResult:
    now = alert.observed_at or db.utcnow()
    device = f"sensor:{alert.sensor_id}"
    obs = Observation(
        class_id=alert.class_id, state=alert.state, observed_at=now, first_seen=now, source="sensor",
        camera_id=device, box=NormBox(x1=0, y1=0, x2=1, y2=1),
        ground=GroundPoint(crs="wgs84", x=alert.lon, y=alert.lat),
        problem_key=(device, device, alert.class_id), description=alert.description,
    )
    return store.ingest_observation(obs, _row(device, alert.alert_id, device, obs, alert), [])


def ingest_manual(store: Store, report: ManualReport, reporter: str) -> IngestResult:
    for sha in report.photo_sha256:
        if not store.evidence.has(sha):
            raise TransitionInputError(errors.PHOTO_UNKNOWN, f"photo_sha256 {sha!r} is not an uploaded evidence file")
    now = report.observed_at or db.utcnow()
    obs = Observation(
        class_id=report.class_id, state=ProblemState.OPENED, observed_at=now, first_seen=now, source="manual",
        ground=GroundPoint(crs="wgs84", x=report.lon, y=report.lat), description=report.description,
    )
    refs = [MediaRef(name=f"photo{i}.jpg", kind=MediaKind.SNAPSHOT, content_type="image/jpeg",
                     size=store.evidence_path(sha).stat().st_size, sha256=sha)
            for i, sha in enumerate(report.photo_sha256)]
    event_id = f"m-{secrets.token_hex(8)}"
    return store.ingest_observation(obs, _row(f"manual:{reporter}", event_id, "", obs, report), refs)


def _row(device: str, event_id: str, camera: str, obs: Observation, body: BaseModel) -> dict[str, Any]:
    return {
        "device_id": device, "event_id": event_id, "seq": 0, "problem_id": obs.problem_key[2] if obs.problem_key
        else event_id, "camera_id": camera, "class_id": obs.class_id, "state": obs.state.value,
        "source": obs.source, "observed_at": obs.observed_at, "payload": body.model_dump(mode="json"),
        "manifest": b"", "signature": b"",
    }
