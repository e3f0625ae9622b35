"""Messages that cross the wire between edge agents and the hub.

Every message carries `v` (the schema version). A receiver rejects versions it does not know
instead of guessing. Times are timezone-aware UTC datetimes; boxes are normalised to 0-1 of the
frame so that they survive resolution changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from protocol import plates
from protocol.plates import PlateColour

PROTOCOL_VERSION: Final = 1
# Problem events are at version 2 (an optional `plate`); the hub still takes version 1 from old agents.
EVENT_VERSION: Final = 2
MAX_MEDIA = 12  # snapshot, annotated, crop, clip, the plate crop and the three timed stills, and spare


class WireModel(BaseModel):
    """Base for the protocol's models (wire messages, the catalog): unknown keys are an error, so a
    typo fails at load time instead of silently at run time; values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Validation context of a receiver that takes messages from newer senders (protocol.codec.decode).
FROM_WIRE: Final = {"from_wire": True}


class Extensible(WireModel):
    """A wire model newer agents may extend with optional fields (health figures, nothing a receiver
    must act on; a field that changes meaning bumps `v` instead).

    A receiver decoding it from the wire (validation context `FROM_WIRE`) validates every field it
    knows as strictly as ever and sets aside the ones it does not, naming them in `unknown_fields`
    (never sent on), so an older hub keeps taking a newer agent's heartbeats. Built in code, an unknown
    field is still an error: a typo in the sender fails where it is made."""

    unknown_fields: tuple[str, ...] = Field(default=(), exclude=True,
                                            description="receiver side: fields of a newer sender, set aside")

    @model_validator(mode="before")
    @classmethod
    def _set_aside_unknown(cls, data: Any, info: ValidationInfo) -> Any:
        if not (isinstance(data, dict) and info.context and info.context.get("from_wire")):
            return data
        known = set(cls.model_fields) - {"unknown_fields"}
        unknown = sorted(str(k) for k in data if k not in known)
        kept = {k: v for k, v in data.items() if k in known}
        return {**kept, "unknown_fields": tuple(unknown)} if unknown else kept


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return value.astimezone(UTC)


def _optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else _require_utc(value)


class ProblemState(StrEnum):
    """Where a problem instance is in its life on the edge."""

    OPENED = "opened"  # the rule fired: a new problem at this place
    UPDATED = "updated"  # still there; fresher evidence
    CLEARED = "cleared"  # gone from the place; the hub may auto-verify its case


class MediaKind(StrEnum):
    SNAPSHOT = "snapshot"  # best frame, original pixels
    ANNOTATED = "annotated"  # boxes, zone, dwell drawn; may be privacy-blurred
    CROP = "crop"  # the object
    CLIP = "clip"  # short video with pre-roll
    PLATE = "plate"  # the licence plate, upright and upscaled (v2)
    STILL = "still"  # one of the timed stills of a parking violation, time and place burned in (v2)


class NormBox(WireModel):
    """Axis-aligned box in normalised image coordinates (0-1, origin top-left)."""

    x1: float = Field(ge=0.0, le=1.0)
    y1: float = Field(ge=0.0, le=1.0)
    x2: float = Field(ge=0.0, le=1.0)
    y2: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> NormBox:
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError(f"box corners out of order: ({self.x1},{self.y1})-({self.x2},{self.y2})")
        return self

    def iou(self, other: NormBox) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        area = (self.x2 - self.x1) * (self.y2 - self.y1)
        union = area + (other.x2 - other.x1) * (other.y2 - other.y1) - inter
        return inter / union if union > 0 else 0.0


class GroundPoint(WireModel):
    """Where the problem touches the ground.

    `crs` is "wgs84" (x = longitude, y = latitude, degrees) or "local:<site>" (x, y in metres in
    that site's own frame; only points of the same site are comparable).
    """

    crs: str = Field(pattern=r"^(wgs84|local:[A-Za-z0-9_.-]{1,64})$")
    x: float
    y: float
    error_m: float | None = Field(default=None, ge=0.0, description="reprojection error of the fit")


class MediaRef(WireModel):
    """One evidence file, sent as its own raw frame; the hub checks size and hash."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: MediaKind
    content_type: Literal["image/jpeg", "video/webm", "video/mp4", "video/x-msvideo", "video/x-motion-jpeg"]
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ModelInfo(WireModel):
    name: str = Field(max_length=128)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class PlateInfo(WireModel):
    """The licence plate of the vehicle in a parking event, as the edge's reads of it agreed (v2).

    `text` None means the edge tried and could not read it (too small, hidden, blurred): the reviewer
    sees "plate unreadable", never a guess."""

    text: str | None = Field(default=None, description="formatted plate, e.g. 皖A·73C39")
    colour: PlateColour | None = None
    score: float = Field(default=0.0, ge=0.0, le=1.0, description="mean score of the reads that agreed")
    frames: int = Field(default=0, ge=0, description="reads (frames) that agreed on the text")
    attempts: int = Field(default=0, ge=0, description="frames read")

    @field_validator("text")
    @classmethod
    def _well_formed(cls, value: str | None) -> str | None:
        return None if value is None else plates.formatted(value)

    @model_validator(mode="after")
    def _consistent(self) -> PlateInfo:
        if self.text is not None and (self.colour is None or self.frames < 1):
            raise ValueError("a plate text needs its colour and at least one agreeing frame")
        if self.frames > self.attempts:
            raise ValueError(f"frames ({self.frames}) cannot exceed attempts ({self.attempts})")
        return self


class ProblemEvent(WireModel):
    """A problem seen by one camera: opened, updated or cleared.

    `problem_id` is stable across the states of one problem instance on one camera;
    `event_id` is unique per message and is the idempotency key with `device_id`.
    """

    v: Literal[1, 2] = EVENT_VERSION
    event_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    problem_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    device_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    camera_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    class_id: str = Field(pattern=r"^[a-z0-9_]{2,64}$", description="problem catalog id")
    state: ProblemState
    zone: str | None = Field(default=None, max_length=64)
    box: NormBox
    score: float = Field(ge=0.0, le=1.0)
    labels: list[str] = Field(default_factory=list, max_length=32)
    first_seen: datetime
    observed_at: datetime = Field(description="when the rule fired, or the problem cleared")
    dwell_s: float = Field(ge=0.0)
    object_count: int = Field(default=1, ge=0)
    ground: GroundPoint | None = None
    model: ModelInfo | None = None
    agent_version: str = Field(default="", max_length=32)
    media: list[MediaRef] = Field(default_factory=list, max_length=MAX_MEDIA)
    plate: PlateInfo | None = Field(default=None, description="v2: the vehicle's plate (parking classes)")

    _utc = field_validator("first_seen", "observed_at")(_require_utc)

    @model_validator(mode="after")
    def _plate_needs_v2(self) -> ProblemEvent:
        if self.v < 2 and self.plate is not None:
            raise ValueError("plate is a version 2 field; a version 1 event cannot carry it")
        return self

    @model_validator(mode="after")
    def _media_names_unique(self) -> ProblemEvent:
        names = [m.name for m in self.media]
        if len(names) != len(set(names)):
            raise ValueError(f"media names must be unique, got {names}")
        return self


class CameraHealth(Extensible):
    camera_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    online: bool
    decode_fps: float = Field(default=0.0, ge=0.0)
    detect_fps: float = Field(default=0.0, ge=0.0)
    skipped_frames: int = Field(default=0, ge=0)
    inference_ms: float = Field(default=0.0, ge=0.0)
    reconnects: int = Field(default=0, ge=0)
    queue_depth: int = Field(default=0, ge=0)
    last_error: str | None = Field(default=None, max_length=500)
    stalled: bool = Field(default=False, description="connected but no frame for the camera's stall_s")
    frame_age_s: float | None = Field(default=None, ge=0.0, description="the newest frame's age (live sources)")
    # fleet health (hub camera admin)
    last_frame_at: datetime | None = Field(default=None, description="wall time of the newest frame sampled")
    dropped_frames: int = Field(default=0, ge=0, description="decoded frames replaced by newer ones unread")
    config_version: int = Field(default=0, ge=0, description="hub config version it runs; 0 = its local YAML")
    # frame clock (hubs from this version on set aside what they do not know: see Extensible)
    clock: Literal["rtcp-sr", "stream", "x-timestamp", "decode", "file"] | None = Field(
        default=None, description="where frame times come from: the camera's RTCP sender reports, the stream "
        "position anchored on the earliest arrivals, MJPEG part stamps, the decode time, a file's timeline")
    clock_skew_s: float | None = Field(default=None, description="sources that send their own times (RTCP SRs, "
                                       "MJPEG stamps): the agent's arrival time minus the camera's, at its least")

    _utc_frame = field_validator("last_frame_at")(_optional_utc)


class Heartbeat(Extensible):
    v: Literal[1] = PROTOCOL_VERSION
    device_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    sent_at: datetime
    agent_version: str = Field(default="", max_length=32)
    uptime_s: float = Field(default=0.0, ge=0.0)
    spool_events: int = Field(default=0, ge=0)
    spool_bytes: int = Field(default=0, ge=0)
    dead_letters: int = Field(default=0, ge=0)
    cameras: list[CameraHealth] = Field(default_factory=list, max_length=256)
    # fleet health (hub camera admin); the hub derives the clock offset from sent_at
    oldest_unsent_at: datetime | None = Field(default=None, description="when the oldest spooled event was spooled")
    cpu_percent: float | None = Field(default=None, ge=0.0, description="agent process CPU since the last "
                                      "heartbeat, % of one core")
    model: ModelInfo | None = None

    _utc = field_validator("sent_at")(_require_utc)
    _utc_unsent = field_validator("oldest_unsent_at")(_optional_utc)


class ReferenceRetake(WireModel):
    """Hub -> agent: adopt how a camera sees a place now as its clear reference for change rules
    (`source: change`), so a verified-clear place is compared with its new normal.

    Sent by the hub (hub.fleet.retakes) when a case of a change rule is verified clear: by its camera
    (auto-verify, the event cleared on a handled case) or by a reviewer's `verify`. It travels as the
    body of a hub-signed `protocol.push.Push` of kind `change_reference` (target: the camera id; each
    retake the camera's next version, so a replayed or stale one is ignored). The agent re-takes the
    zone's pixels inside `box` (grown a little), except pixels holding a change that began after the
    push's `issued_at` (something set down after the verification stays reported), and answers with
    its PushResult.
    """

    v: Literal[1] = PROTOCOL_VERSION
    camera_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    zone: str | None = Field(default=None, max_length=64, description="None: the camera's whole view")
    box: NormBox | None = Field(default=None, description="the case's place inside the zone; None: the whole zone")
    case_id: str | None = Field(default=None, max_length=64, description="the case whose review asked for it")
