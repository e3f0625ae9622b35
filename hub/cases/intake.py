"""The non-camera intakes, IoT sensors and people: their request models and their path into dedup.

Both go through the same burst ingest as edge events (Store.ingest_observation), so there is one dedup path.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from hub import errors
from hub.api.schemas import ApiTime, In
from hub.cases.dedup import Observation
from hub.cases.gazetteer import Gazetteer
from hub.cases.lifecycle import TransitionInputError
from hub.ingest.burst import IngestResult
from hub.storage import db
from hub.storage.store import Store
from protocol.messages import GroundPoint, MediaKind, MediaRef, NormBox, ProblemState

CLASS_ID = r"^[a-z0-9_]{2,64}$"


# ---- other intakes: IoT sensors and people ---------------------------------------------------------


class Intake(In):
    class_id: str = Field(pattern=CLASS_ID, description="problem catalog id")
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

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    sensor_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    alert_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$", description="idempotency key per sensor")
    state: ProblemState = ProblemState.OPENED
    value: float | None = None
    threshold: float | None = None
    measure_unit: str | None = Field(default=None, max_length=16)


class ManualReport(Intake):
    """A report filed by a person (inspector, citizen app); joins a case within the class distance, or,
    given only an address, a case of the class at the same address (hub.cases.dedup)."""

    lat: float | None = Field(default=None, ge=-90, le=90, description="with lon; or give only an address")
    lon: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = Field(default=None, min_length=1, max_length=500,
                                description="street address as the reporter wrote it; without lat/lon the case "
                                            "has no place (hub setting address_only_reports)")
    photo_sha256: list[str] = Field(default_factory=list, max_length=8, description="uploaded evidence")

    @model_validator(mode="after")
    def _somewhere(self) -> ManualReport:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon: give both or neither")
        if self.lat is None and not (self.address and self.address.strip()):
            raise ValueError("lat and lon are required (or an address, where the hub keeps address-only reports)")
        return self

    @property
    def address_only(self) -> bool:
        return self.lat is None


class AddressRefused(ValueError):
    """A report with an address and no lat/lon, where the hub setting address_only_reports is `refuse`."""


def placed(report: ManualReport, keep_address_only: bool, gazetteer: Gazetteer | None) -> ManualReport:
    """`report` with a place: its own lat/lon, else the gazetteer's for its address; an address-only report
    is kept without a place (`keep_address_only`) or refused (AddressRefused, naming lat/lon)."""
    if not report.address_only:
        return report
    where = gazetteer.place(report.address) if gazetteer is not None else None
    if where is not None:
        return report.model_copy(update={"lat": where[0], "lon": where[1]})
    if not keep_address_only:
        raise AddressRefused("lat and long are required: this hub does not keep reports with only an address "
                             "(hub setting address_only_reports: refuse)")
    return report


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


def ingest_manual(store: Store, report: ManualReport, reporter: str, event_id: str | None = None) -> IngestResult:
    """File a person's report (its event id: `event_id`, or a fresh m-<hex>)."""
    for sha in report.photo_sha256:
        if not store.evidence.has(sha):
            raise TransitionInputError(errors.PHOTO_UNKNOWN, f"photo_sha256 {sha!r} is not an uploaded evidence file")
    now = report.observed_at or db.utcnow()
    ground = None if report.lat is None or report.lon is None else GroundPoint(crs="wgs84", x=report.lon,
                                                                               y=report.lat)
    obs = Observation(
        class_id=report.class_id, state=ProblemState.OPENED, observed_at=now, first_seen=now, source="manual",
        ground=ground, description=report.description, address=report.address,
    )
    refs = [MediaRef(name=f"photo{i}.jpg", kind=MediaKind.SNAPSHOT, content_type="image/jpeg",
                     size=store.evidence_path(sha).stat().st_size, sha256=sha)
            for i, sha in enumerate(report.photo_sha256)]
    event_id = event_id or new_event_id()
    return store.ingest_observation(obs, _row(f"manual:{reporter}", event_id, "", obs, report), refs)


def new_event_id() -> str:
    """The event id of a person's report (device manual:<name>)."""
    return f"m-{secrets.token_hex(8)}"


def _row(device: str, event_id: str, camera: str, obs: Observation, body: BaseModel) -> dict[str, Any]:
    return {
        "device_id": device, "event_id": event_id, "seq": 0, "problem_id": obs.problem_key[2] if obs.problem_key
        else event_id, "camera_id": camera, "class_id": obs.class_id, "state": obs.state.value,
        "source": obs.source, "observed_at": obs.observed_at, "payload": body.model_dump(mode="json"),
        "manifest": b"", "signature": b"",
    }
