"""Other intakes into the same dedup: IoT sensor alerts and reports filed by people."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from hub import errors
from hub.api.deps import STAFF, CurrentUser, SettingsDep, StoreDep, require
from hub.api.schemas import IntakeOut
from hub.cases import classes, intake
from hub.cases.lifecycle import Role
from hub.errors import Refused

router = APIRouter(prefix="/intake", tags=["intake"], dependencies=[Depends(require(Role.SENSOR, *STAFF))])


def _known_class(class_id: str) -> None:
    if classes.find(class_id) is None:
        raise Refused(errors.UNKNOWN_CLASS, f"unknown class_id {class_id!r}; see GET /classes", class_id=class_id)


def _out(result: Any) -> dict[str, Any]:
    return {"duplicate": result.duplicate, "case_id": result.case_id, "created": result.created}


@router.post("/sensor", response_model=IntakeOut, summary="An IoT alert (e.g. a gas or noise threshold)")
def sensor_alert(alert: intake.SensorAlert, store: StoreDep) -> dict[str, Any]:
    _known_class(alert.class_id)
    return _out(intake.ingest_sensor(store, alert))


@router.post("/report", response_model=IntakeOut, summary="A problem reported by a person")
def manual_report(report: intake.ManualReport, store: StoreDep, user: CurrentUser, settings: SettingsDep
                  ) -> dict[str, Any]:
    """With lat/lon, or with only an address (kept without a place or refused: hub setting
    address_only_reports; placed when the bureau's gazetteer lists the address)."""
    _known_class(report.class_id)
    try:
        report = intake.placed(report, settings.address_only_reports == "keep", settings.places())
    except intake.AddressRefused as exc:
        raise Refused(errors.ADDRESS_REFUSED, str(exc)) from exc
    return _out(intake.ingest_manual(store, report, user.name))
