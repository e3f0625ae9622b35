"""Hub settings: one pydantic model, unknown keys refused, overridable from CITYEYE_HUB_* variables."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterable, Mapping
from datetime import date, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, ValidationError, field_validator, model_validator

from hub.auth.config import AccountPolicy
from hub.cases.lifecycle import StageHours
from hub.cases.national_calendar import DaysOff, official_days, with_bureau_changes
from hub.cases.workcal import WorkingCalendar
from hub.ingest.config import IngestTuning, tcp_host_port

if TYPE_CHECKING:
    from hub.cases.gazetteer import Gazetteer

ENV_PREFIX = "CITYEYE_HUB_"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UnitConfig(Strict):
    """A responsible unit and the cases routed to it; an empty list matches anything."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="unit id stored on dispatched cases")
    name: str = Field(default="", max_length=200)
    cameras: list[str] = Field(default_factory=list)
    zones: list[str] = Field(default_factory=list)
    classes: list[str] = Field(default_factory=list)
    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="min_lon, min_lat, max_lon, max_lat of the unit's grid"
    )

    @field_validator("bbox")
    @classmethod
    def _ordered(cls, v: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
        if v is not None and (v[0] > v[2] or v[1] > v[3]):
            raise ValueError(f"bbox must be min_lon, min_lat, max_lon, max_lat; got {v}")
        return v


class CalendarConfig(Strict):
    timezone: str = Field(default="Asia/Shanghai", description="IANA zone the working hours are in")
    periods: list[tuple[time, time]] = Field(
        default_factory=lambda: [(time(8, 30), time(12, 0)), (time(13, 30), time(17, 30))], min_length=1
    )
    workdays: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], description="Monday = 0")
    holidays: list[date] = Field(default_factory=list, description="days off on top of the country's")
    extra_workdays: list[date] = Field(default_factory=list, description="days worked whatever the country's "
                                       "calendar says")
    country: str | None = Field(default="CN", description="official days off and make-up working days (调休) "
                                "from the `holidays` package; None: only the days listed here")
    language: str | None = Field(default="zh_CN", description="language of the official days' names")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("periods")
    @classmethod
    def _periods_ordered(cls, v: list[tuple[time, time]]) -> list[tuple[time, time]]:
        for start, end in v:
            if end <= start:
                raise ValueError(f"working period {start}-{end} ends before it starts")
        return v

    @field_validator("country")
    @classmethod
    def _known_country(cls, v: str | None) -> str | None:
        if v is not None:
            official_days(v, [date.today().year])  # ValueError naming it when the package lacks it
        return v

    def build(self, days_off: Iterable[date] = (), working_days: Iterable[date] = ()) -> WorkingCalendar:
        """The calendar: the country's official days (this year, the last and the next two), then the days
        listed here and the bureau's own from the page (`days_off`, `working_days`) on top."""
        official = DaysOff(frozenset(), frozenset(), {})
        if self.country:
            this_year = date.today().year
            official = official_days(self.country, range(this_year - 1, this_year + 3))
        days = with_bureau_changes(official, [*self.holidays, *days_off], [*self.extra_workdays, *working_days])
        return WorkingCalendar(
            tz=ZoneInfo(self.timezone), periods=tuple(self.periods), workdays=frozenset(self.workdays),
            holidays=days.holidays, extra_workdays=days.extra_workdays,
        )


class MapConfig(Strict):
    """The map page's base layer: the bureau's own tile service (many bureaus' networks reach no other)."""

    tile_url: str | None = Field(default=None, description="https://tiles.example/{z}/{x}/{y}.png; None: the "
                                 "page draws a plain grid in the cameras' calibrated coordinates")
    attribution: str = Field(default="", max_length=300, description="credit shown on the map")

    @field_validator("tile_url")
    @classmethod
    def _tile_template(cls, v: str | None) -> str | None:
        if v is not None and not (v.startswith(("http://", "https://")) and all(k in v for k in ("{z}", "{x}", "{y}"))):
            raise ValueError(f"tile_url must be an http(s) URL with {{z}}, {{x}} and {{y}}, got {v!r}")
        return v


class HubSettings(Strict):
    db_url: str | None = Field(default=None, description="postgresql://... ; None: SQLite in data_dir")
    data_dir: Path = Field(default=Path("hub-data"), description="database (SQLite), evidence, keys")
    api_bind: str = Field(default="127.0.0.1:8080", pattern=r"^[^:]+:\d{1,5}$")
    tls_cert: Path | None = Field(default=None, description="PEM certificate (chain) the API serves HTTPS with; "
                                  "None: plain HTTP. Agents download detector files from the API, so a bureau "
                                  "network serves it with a certificate from its own CA")
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert (required with it)")
    zmq_bind: str | None = Field(default="tcp://*:7755", description="ZeroMQ ingest; None: API only")
    insecure: bool = Field(default=False, description="ZeroMQ without CURVE (testing only)")
    ingest_processes: int = Field(
        default=1, ge=1, le=64,
        description="ZeroMQ ingest worker processes; 1: ingest runs in the API's process. On a node with "
                    "several cores, about one per core spent on ingest; they share the zmq_bind port "
                    "(tcp://HOST:PORT, Linux SO_REUSEPORT; hub.ingest.processes)",
    )
    ingest: IngestTuning = Field(default_factory=IngestTuning, description="ZeroMQ ingest limits, threads and "
                                 "batching per process (hub.ingest.config.IngestTuning)")
    evidence_fsync: bool = Field(
        default=True, description="fsync each evidence file before the ACK (survives power loss; slower)"
    )
    units: list[UnitConfig] = Field(default_factory=list)
    default_unit: str | None = Field(default=None, description="unit for cases no rule matches")
    calendar: CalendarConfig = Field(default_factory=CalendarConfig)
    map: MapConfig = Field(default_factory=MapConfig)
    stage_hours: dict[str, float] = Field(default_factory=dict, description="review/dispatch/handle/verify/close")
    camera_offline_after_s: float = Field(
        default=25.0, gt=0, description="a camera whose agent sent no heartbeat for this long shows offline "
        "(agents send one every 10 s, and at once when a camera stalls or comes back)")
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_backoff_s: float = Field(default=2.0, gt=0)
    webhook_allow_cidrs: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="networks webhook URLs may reach besides public addresses, e.g. [\"10.20.0.0/16\"] for a "
                    "dispatch system on the intranet. Unlisted loopback, private, link-local (cloud metadata), "
                    "multicast and reserved addresses are refused at registration and at each delivery",
    )
    overdue_sweep_s: float = Field(
        default=30.0, gt=0, description="how often the hub looks for cases past their deadline (case.overdue)"
    )
    rollout_judge_s: float = Field(
        default=300.0, gt=0, description="how often the hub judges a model rollout's canary (promote, roll back, wait)"
    )
    sse_poll_s: float = Field(default=0.5, gt=0)
    accounts: AccountPolicy = Field(default_factory=AccountPolicy, description="people's sign-in: lockout, "
                                    "sessions, rate limit, password cost (hub.auth.config.AccountPolicy)")
    undo_grace_s: float = Field(default=60.0, ge=0, le=3600,
                                description="a reviewer may undo their own confirm or void this long after it")
    evidence_package_max_mb: float = Field(
        default=512.0, gt=0, description="largest evidence package (MB) the API and `hub export-evidence` build; "
                                         "a larger case gets 413 / an error naming its size"
    )
    address_only_reports: Literal["keep", "refuse"] = Field(
        default="keep", description="reports (Open311 POST, /intake/report) with an address but no lat/long, as "
        "GeoReport v2 allows: keep: a case that carries the address and no place (dedup by class and address, "
        "routed by class or to default_unit, not on the map; placed when the gazetteer knows the address); "
        "refuse: the report is refused with an error naming lat/long")
    gazetteer: Path | None = Field(
        default=None, description="the bureau's address list (CSV: address,lat,lon per line, UTF-8): a report "
        "with only an address that is listed here is placed at its lat/lon (no geocoding service needed)")
    open311_media_fetch: bool = Field(
        default=True, description="fetch the photo an Open311 client links (media_url) in the background and "
        "keep it as case evidence; false: keep the link only")
    open311_media_max_mb: float = Field(default=10.0, gt=0, le=100, description="largest media_url photo (MB)")
    open311_media_timeout_s: float = Field(default=15.0, gt=0, le=300,
                                           description="media_url fetch: time allowed for the whole fetch")
    open311_media_allow_cidrs: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="networks media_url may reach besides public addresses (as webhook_allow_cidrs); loopback, "
                    "private and link-local addresses are otherwise refused, checked on the address connected to")
    open311_public_reads: bool = Field(
        default=True, description="Open311 GET without an api_key, as GeoReport v2 has it (reporters' contacts "
                                  "masked); false: every Open311 read needs a token")

    @field_validator("gazetteer")
    @classmethod
    def _gazetteer_reads(cls, v: Path | None) -> Path | None:
        if v is not None:
            from hub.cases import gazetteer  # here: hub.cases imports these settings (routing)

            gazetteer.load(v)  # ValueError naming the file and line
        return v

    @field_validator("db_url")
    @classmethod
    def _db_scheme(cls, v: str | None) -> str | None:
        if v and not v.startswith(("postgresql://", "postgres://", "postgresql+psycopg://", "sqlite:///")):
            raise ValueError(f"db_url must be postgresql://... or sqlite:///PATH, got {v.split('://')[0]}://")
        return v

    @model_validator(mode="after")
    def _tls_pair(self) -> HubSettings:
        check_tls_pair(self.tls_cert, self.tls_key)
        return self

    @property
    def api_scheme(self) -> str:
        """https when the API serves TLS: the scheme of every URL of the API handed out (enrolment)."""
        return "https" if self.tls_cert else "http"

    @model_validator(mode="after")
    def _shared_port(self) -> HubSettings:
        if self.ingest_processes > 1 and self.zmq_bind:
            try:
                tcp_host_port(self.zmq_bind)
            except ValueError as exc:
                raise ValueError(f"zmq_bind: {exc} (ingest_processes is {self.ingest_processes})") from None
        return self

    @model_validator(mode="after")
    def _default_unit_known(self) -> HubSettings:
        ids = [u.id for u in self.units]
        if len(ids) != len(set(ids)):
            raise ValueError(f"unit ids must be unique: {ids}")
        if self.default_unit and ids and self.default_unit not in ids:
            raise ValueError(f"default_unit {self.default_unit!r} is not one of the units {ids}")
        StageHours(**self.stage_hours)  # names checked here, not at first dispatch
        return self

    @field_validator("stage_hours")
    @classmethod
    def _stage_names(cls, v: dict[str, float]) -> dict[str, float]:
        known = {"review", "dispatch", "handle", "verify", "close"}
        if set(v) - known:
            raise ValueError(f"unknown stage(s) {sorted(set(v) - known)}; known: {sorted(known)}")
        return v

    def places(self) -> Gazetteer | None:
        """The gazetteer (re-read when its file changed), or None without one."""
        from hub.cases import gazetteer

        return gazetteer.load(self.gazetteer) if self.gazetteer is not None else None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> HubSettings:
        """Settings from CITYEYE_HUB_<FIELD> (JSON for lists/objects), then explicit overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for key, raw in environ.items():
            if not key.startswith(ENV_PREFIX):
                continue
            name = key[len(ENV_PREFIX):].lower()
            if name not in cls.model_fields:
                raise ValueError(f"{key}: no hub setting {name!r}; known: {sorted(cls.model_fields)}")
            values[name] = _parse_env(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def check_tls_pair(cert: Path | None, key: Path | None) -> None:
    """Both files or neither, readable, and the key the certificate's: checked at start, not at the first client."""
    if (cert is None) != (key is None):
        missing, given = ("tls_key", f"tls_cert {cert}") if key is None else ("tls_cert", f"tls_key {key}")
        raise ValueError(f"{missing} is required with {given} (HTTPS needs the certificate and its key)")
    if cert is None or key is None:
        return
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        if not path.is_file():
            raise ValueError(f"{name}: {path}: no such file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"tls_cert {cert} / tls_key {key}: not a PEM certificate and its private key: "
                         f"{exc}") from None


def _parse_env(raw: str) -> Any:
    if raw[:1] in "[{":
        return json.loads(raw)
    return raw


__all__ = ["CalendarConfig", "HubSettings", "UnitConfig", "ValidationError"]

