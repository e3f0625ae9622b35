"""Request and response models of the hub's REST API (what the OpenAPI document promises)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hub.cases.lifecycle import Action, CaseStatus, Role


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class In(BaseModel):
    # NaN and Infinity are not numbers a case, a sensor reading or a box can hold.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


def sane_time(value: datetime) -> datetime:
    """A time the hub can store and compare on both databases: 1970-2200 once in UTC. (A date near year 1
    or 9999 with an offset overflows on conversion to UTC.) Naive times pass through: routes that need a
    zone say so themselves."""
    try:
        utc = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(f"time {value.isoformat()} is outside the range the hub keeps "
                         f"({EARLIEST.date()} to {LATEST.date()})")
    return value


ApiTime = Annotated[datetime, AfterValidator(sane_time)]


class ErrorOut(Out):
    """Every error: `detail` says what is wrong in English (a list of field errors for malformed requests);
    `code` is a stable machine code from hub.errors and `params` its values, for clients to word it."""

    detail: str | list[dict[str, Any]] | dict[str, Any]
    code: str = Field(description="stable machine code (hub.errors.REGISTRY), e.g. illegal_transition")
    params: dict[str, Any] = Field(default_factory=dict, description="the code's values, e.g. {\"field\": \"note\"}")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in ((401, "missing or unknown API token"), (403, "role not allowed"),
                       (404, "not found"), (409, "illegal in the current state"),
                       (422, "invalid input; detail names the field or the rule"))
}


class GroundOut(Out):
    crs: str
    x: float
    y: float


class PlateOut(Out):
    """The vehicle's licence plate (parking classes). `text` None: the edge could not read it."""

    text: str | None = Field(description="苏E·D51712 for roles that act on the case; masked (苏E·D5**12) otherwise")
    colour: str | None
    score: float
    masked: bool
    corrected: bool = Field(description="a reviewer corrected the edge's read (see the timeline)")
    can_correct: bool
    frames: int | None = Field(None, description="edge reads (frames) that agreed on the text, latest event")
    attempts: int | None = Field(None, description="frames the edge read, latest event")
    cases_90d: int | None = Field(None, description="cases of this plate created in the last 90 days")


class PlateIn(BaseModel):
    text: str = Field(min_length=2, max_length=16, description="the correct plate, e.g. 苏E·D51712")
    note: str | None = Field(None, max_length=500, description="why the edge's read was wrong")


class CaseOut(Out):
    case_id: str
    class_id: str
    class_name: str
    status: CaseStatus
    source: str
    camera_id: str | None
    zone: str | None
    box: dict[str, float] | None
    ground: GroundOut | None
    lat: float | None
    lon: float | None
    description: str | None
    first_seen: datetime
    last_seen: datetime
    event_count: int
    recurrence_of: str | None
    recurrence_count: int
    unit: str | None
    routed_unit: str | None = Field(default=None, description="before dispatch: the unit the routing rules "
                                    "would pick (dispatch without a unit goes there)")
    deadline_at: datetime | None
    overdue: bool
    cleared_at: datetime | None
    created_at: datetime
    updated_at: datetime
    filed_at: datetime | None
    handled_at: datetime | None
    closed_at: datetime | None
    plate: PlateOut | None = None
    address: str | None = Field(default=None, description="the street address the reporter gave (Open311 "
                                "address_string); a case with only an address has no lat/lon and no ground")
    routing_note: str | None = Field(default=None, description="no_place: the case has no position, so units "
                                     "chosen by area (bbox) cannot apply; routed by class or to default_unit")


class MediaFetchOut(Out):
    url: str
    status: str = Field(description="pending, fetching, stored, failed, off (fetching disabled)")
    reason: str | None = Field(description="why it was not kept (failed, off)")
    sha256: str | None = Field(description="the stored photo (stored)")
    created_at: datetime
    done_at: datetime | None


class CasePage(Out):
    total: int
    offset: int
    limit: int
    items: list[CaseOut]


class MediaOut(Out):
    name: str
    kind: str
    content_type: str
    size: int
    sha256: str
    url: str


class EventOut(Out):
    device_id: str
    event_id: str
    source: str
    state: str
    camera_id: str
    observed_at: datetime
    received_at: datetime
    signed: bool
    media: list[MediaOut]


class TransitionOut(Out):
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str
    note: str | None
    unit: str | None
    photo_sha256: str | None


class CaseDetail(CaseOut):
    events: list[EventOut]
    timeline: list[TransitionOut]
    allowed_actions: list[Action]
    media_fetches: list[MediaFetchOut] = Field(default_factory=list, description="photos linked by Open311 "
                                               "clients (media_url) and whether the hub could keep them")


class TransitionIn(In):
    note: str | None = Field(default=None, max_length=4000, description="reason or feedback; required by some")
    unit: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="dispatch target")
    photo_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="uploaded photo")


class UploadOut(Out):
    sha256: str
    size: int


class IntakeOut(Out):
    duplicate: bool
    case_id: str | None
    created: bool


class CameraOut(Out):
    camera_id: str
    device_id: str
    online: bool
    reported_online: bool
    last_seen: datetime | None
    health: dict[str, object] | None


class DeviceOut(Out):
    device_id: str
    revoked: bool
    online: bool
    enrolled_at: datetime
    last_seen: datetime | None
    agent_version: str | None
    cameras: list[str]


class ProblemClassOut(Out):
    id: str
    code: str | None
    name_zh: str
    name_en: str
    family: str
    priority: str
    sla_hours: float
    labels: list[str]
    coco: bool
    dedup_radius_m: float


class ClassStat(Out):
    class_id: str
    events: int
    cases: int
    filed: int
    void: int
    precision: float | None = Field(description="filed / (filed + void); None before any review")


class DayStat(Out):
    day: str
    events: int
    cases: int


class UnitStat(Out):
    unit: str
    handled: int
    on_time: int
    on_time_rate: float | None


class CameraStat(Out):
    """Capture precision of one edge camera: a badly placed camera shows up here before it wears out reviewers."""

    camera_id: str
    cases: int
    filed: int
    void: int
    precision: float | None = Field(description="filed / (filed + void); None before any review")
    most_voided_class: str | None = Field(description="the class with the most voided cases; None without voids")
    most_voided_class_voids: int


class StatsOut(Out):
    per_class: list[ClassStat]
    per_day: list[DayStat]
    median_hours_to_close: float | None
    per_unit: list[UnitStat]
    per_camera: list[CameraStat] = Field(
        description="edge cameras with cases created in the range, worst precision first (None last), "
        "then most voids; the first camera_limit of them"
    )
    per_camera_total: int = Field(description="edge cameras with cases in the range (per_camera may hold fewer)")


class TokenIn(In):
    name: str = Field(min_length=1, max_length=128)
    role: Role
    expires_days: int | None = Field(default=None, ge=1, le=3650, description="None: valid until revoked")


class TokenOut(Out):
    id: int
    name: str
    role: Role
    created_at: datetime | None = None
    expires_at: datetime | None = Field(default=None, description="None: valid until revoked")
    last_used_at: datetime | None = Field(default=None, description="to the minute; None: never used")
    token: str | None = Field(default=None, description="shown once, at creation")


WebhookKind = Literal["case.created", "case.updated", "case.transition", "case.overdue"]  # = case_events.KINDS


_DEFAULT_KINDS: tuple[WebhookKind, ...] = ("case.created", "case.transition")


class WebhookIn(In):
    url: str = Field(pattern=r"^https?://[^\s]{1,1990}$",
                     description="receiver of the POSTed case events; no credentials in it, and only public "
                                 "addresses unless the hub setting webhook_allow_cidrs lists the network")
    secret: str = Field(min_length=16, max_length=256, description="HMAC-SHA256 key for X-CityEye-Signature")
    kinds: list[WebhookKind] = Field(
        default_factory=lambda: list(_DEFAULT_KINDS), min_length=1,
        description="case.overdue: a stage deadline passed (once per case and deadline)",
    )


class WebhookOut(Out):
    id: int
    url: str
    kinds: list[str]
    active: bool
    created_at: datetime


class DeliveryOut(Out):
    id: int
    change_id: int
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None


class UnitOut(Out):
    id: str
    name: str


class MeOut(Out):
    """The caller and what a client needs to present cases: bureau time zone and dispatch units."""

    name: str
    role: Role
    timezone: str = Field(description="IANA zone of the bureau's working calendar")
    units: list[UnitOut] = Field(description="units a case may be dispatched to")
    default_unit: str | None
    undo_grace_s: float = Field(description="how long after a confirm or void its actor may undo it")
    csrf_token: str | None = Field(default=None, description="signed in with a password: the token to send as "
                                   "X-CSRF-Token with every request that changes something")
    session_idle_minutes: float | None = Field(default=None, description="signed in with a password: the session "
                                               "ends after this long without use")


class SessionIn(In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(Out):
    name: str
    role: Role
    csrf_token: str = Field(description="send as X-CSRF-Token with every request that changes something")
    expires_at: datetime


class SignInRefusal(Out):
    code: Literal["bad_credentials", "locked", "disabled", "rate_limited"]
    message: str
    locked_until: datetime | None = None
    retry_after_s: int | None = None
    max_failures: int | None = None


class SignInErrorOut(Out):
    detail: SignInRefusal
    code: str
    params: dict[str, Any] = Field(default_factory=dict)


class UserOut(Out):
    id: int
    name: str
    role: Role
    disabled: bool
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None


class HealthOut(Out):
    status: Literal["ok"]
    database: str
    schema_version: int
