"""Case transitions in the database, unit routing, and the non-camera intakes (sensors, people).

`transition()` locks the case row, asks `lifecycle.check_transition` whether the action is allowed,
then writes the new status, the stage deadline, an audit row and an outbox row in one transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from hub.api.schemas import In
from hub.cases.dedup import Observation
from hub.cases.lifecycle import Action, CaseNotFound, CaseStatus, Role, TransitionInputError, check_transition
from hub.settings import UnitConfig
from hub.storage import db
from hub.storage.store import IngestResult, Store
from protocol.messages import GroundPoint, MediaKind, MediaRef, NormBox, ProblemState

CLASS_ID = r"^[a-z0-9_]{2,64}$"


def route_unit(case: Mapping[str, Any], units: list[UnitConfig], default: str | None) -> str | None:
    """The first unit whose rule matches the case's camera, zone, class and place."""
    for unit in units:
        if unit.cameras and case.get("camera_id") not in unit.cameras:
            continue
        if unit.zones and case.get("zone") not in unit.zones:
            continue
        if unit.classes and case.get("class_id") not in unit.classes:
            continue
        if unit.bbox:
            lon, lat = case.get("lon"), case.get("lat")
            west, south, east, north = unit.bbox
            if lon is None or lat is None or not (west <= lon <= east and south <= lat <= north):
                continue
        return unit.id
    return default


def transition(
    store: Store,
    case_id: str,
    action: Action,
    *,
    actor: str,
    role: Role,
    note: str | None = None,
    unit: str | None = None,
    photo_sha256: str | None = None,
    units: list[UnitConfig] | None = None,
    default_unit: str | None = None,
) -> dict[str, Any]:
    """Apply `action` to the case; returns the updated case row. Raises a TransitionError subclass."""

    def tx(conn: Connection) -> dict[str, Any]:
        c = db.cases
        row = conn.execute(select(c).where(c.c.case_id == case_id).with_for_update()).first()
        if row is None:
            raise CaseNotFound(f"no case {case_id!r}")
        case = dict(row._mapping)
        current = CaseStatus(case["status"])
        rule = check_transition(action, current, role, note, photo_sha256)
        if photo_sha256 is not None and not _photo_ok(store, photo_sha256):
            raise TransitionInputError(f"photo_sha256 {photo_sha256!r} is not an uploaded evidence file")
        now = db.utcnow()
        values = _values_for(store, action, case, rule.target, now, unit, units or [], default_unit)
        conn.execute(update(c).where(c.c.case_id == case_id).values(status=rule.target.value, updated_at=now,
                                                                   **values))
        conn.execute(
            db.transitions.insert().values(
                case_id=case_id, at=now, actor=actor, action=action.value, from_status=current.value,
                to_status=rule.target.value, note=note, unit=values.get("unit"), photo_sha256=photo_sha256,
            )
        )
        conn.execute(
            db.case_changes.insert().values(
                at=now, case_id=case_id, kind="case.transition", status=rule.target.value,
                data={"action": action.value, "from": current.value, "actor": actor},
            )
        )
        return dict(conn.execute(select(c).where(c.c.case_id == case_id)).one()._mapping)

    result = store.write(tx)
    store.notify(case_id, "case.transition")
    return result


def _photo_ok(store: Store, sha256: str) -> bool:
    try:
        return store.evidence.exists(sha256)
    except ValueError:
        return False


def _values_for(
    store: Store, action: Action, case: dict[str, Any], target: CaseStatus, now: datetime, unit: str | None,
    units: list[UnitConfig], default_unit: str | None,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if not (action == Action.START and case["deadline_at"] is not None):  # handling clock spans both stages
        values["deadline_at"] = store._deadline(case["class_id"], target, now)
    if action == Action.CONFIRM or (action == Action.REOPEN and case["filed_at"] is None):
        values["filed_at"] = case["filed_at"] or now
    if action in (Action.DISPATCH, Action.REWORK):
        chosen = unit or (case["unit"] if action == Action.REWORK else None) or route_unit(case, units, default_unit)
        if chosen is None:
            raise TransitionInputError("dispatch needs a unit: none given and no routing rule matches this case")
        known = {u.id for u in units} | ({default_unit} if default_unit else set())
        if known and chosen not in known:
            raise TransitionInputError(f"unknown unit {chosen!r}; configured units: {sorted(known)}")
        values["unit"] = chosen
    elif action == Action.RETURN:
        values["unit"] = None
    if action == Action.HANDLE:
        values["handled_at"] = now
        values["handled_on_time"] = case["deadline_at"] is None or now <= case["deadline_at"]
    if action == Action.CLOSE:
        values["closed_at"] = now
    if action == Action.REOPEN:
        values["closed_at"] = None
    return values


# ---- other intakes: IoT sensors and people ---------------------------------------------------------


class Intake(In):
    class_id: str = Field(pattern=CLASS_ID, description="problem catalog id")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    observed_at: datetime | None = Field(default=None, description="default: now")
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
        if not _photo_ok(store, sha):
            raise TransitionInputError(f"photo_sha256 {sha!r} is not an uploaded evidence file")
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
