"""The hub's tables (SQLAlchemy Core metadata): devices and their keys, cameras, cases, events, media, the
audit trail and outbox, tokens, webhooks. Changing a table needs a step in hub.storage.migrations.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from hub.storage.db import naive_utc


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python, naive UTC in the database (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("curve_public_key", String(128), nullable=False),
    Column("sign_public_key", String(128), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("enrolled_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("last_seen", UTCDateTime),
    Column("agent_version", String(32)),
    Column("health", JSON),
)

# Every signing key a device has had, with the period the hub accepted it: [valid_from, valid_until).
# Written with the devices row by enrolment, re-enrolment (--replace ends the current key) and revocation;
# `cityeye hub verify` and evidence packages check an event with the key in force at its received_at.
device_keys = Table(
    "device_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("sign_public_key", String(128), nullable=False),
    Column("curve_public_key", String(128), nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_until", UTCDateTime),  # None: in force
    Column("ended", String(16)),  # replaced, revoked
    Index("ix_device_keys_device", "device_id", "valid_from"),
)

cameras = Table(
    "cameras",
    metadata,
    Column("camera_id", String(64), primary_key=True),
    Column("device_id", String(64), nullable=False),
    Column("online", Boolean, nullable=False, default=False),
    Column("last_seen", UTCDateTime),
    Column("health", JSON),
)

cases = Table(
    "cases",
    metadata,
    Column("case_id", String(32), primary_key=True),
    Column("class_id", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("source", String(16), nullable=False),  # edge, sensor, manual
    Column("camera_id", String(64)),
    Column("zone", String(64)),
    Column("box", JSON),
    Column("ground_crs", String(80)),
    Column("ground_x", Float),
    Column("ground_y", Float),
    Column("lat", Float),
    Column("lon", Float),
    Column("description", Text),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("event_count", Integer, nullable=False, default=1),
    Column("recurrence_of", String(32)),
    Column("recurrence_count", Integer, nullable=False, default=0),
    Column("unit", String(64)),
    Column("deadline_at", UTCDateTime),
    Column("cleared_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("filed_at", UTCDateTime),
    Column("handled_at", UTCDateTime),
    Column("handled_on_time", Boolean),
    Column("closed_at", UTCDateTime),
    # The vehicle's licence plate (parking classes), without its dot: 苏ED51712. None: not read.
    Column("plate", String(16)),
    Column("plate_colour", String(8)),
    Column("plate_score", Float),
    Column("plate_corrected", Boolean),  # true: a reviewer corrected the edge's read (audited)
    # A report's street address as the reporter wrote it (Open311 address_string/address_id); a case filed
    # with an address and no lat/long has only this, no place. address_key: normalised, for dedup.
    Column("address", String(500)),
    Column("address_key", String(500)),
    Index("ix_cases_class_status", "class_id", "status"),
    Index("ix_cases_plate", "plate", "created_at"),  # ?plate=, dedup by plate, repeat offenders
    Index("ix_cases_camera_status", "camera_id", "status"),
    # Statistics over a time range (hub.cases.queries.statistics_for) read only the index, not the rows: per class,
    # per camera, filed and void. Also serves every lookup by creation time.
    Index("ix_cases_stats", "created_at", "class_id", "status", "source", "camera_id", "filed_at"),
    Index("ix_cases_closed", "closed_at", "created_at"),  # time to close
    # Dedup candidates (hub.cases.dedup._candidates_query), one index per branch of its OR: same camera and zone,
    # or a ground box (equality columns, the status IN list, then the x range; y is checked in the index).
    Index("ix_cases_dedup_camera", "class_id", "camera_id", "zone", "status"),
    Index("ix_cases_dedup_ground", "class_id", "ground_crs", "status", "ground_x", "ground_y"),
    Index("ix_cases_dedup_address", "class_id", "address_key", "status"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("problem_id", String(64), nullable=False),
    Column("camera_id", String(64), nullable=False),
    Column("class_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("source", String(16), nullable=False, default="edge"),  # edge, sensor, manual
    Column("observed_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("payload", JSON, nullable=False),  # the ProblemEvent as JSON
    Column("manifest", LargeBinary, nullable=False),  # verbatim, for later re-verification
    Column("signature", LargeBinary, nullable=False),
    Column("case_id", String(32), ForeignKey("cases.case_id")),
    UniqueConstraint("device_id", "event_id", name="uq_events_device_event"),
    Index("ix_events_case", "case_id"),
    Index("ix_events_problem", "device_id", "camera_id", "problem_id"),
    Index("ix_events_event_id", "event_id"),
    Index("ix_events_observed", "observed_at", "class_id"),  # events per class and per day, from the index
)

media = Table(
    "media",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_pk", Integer, ForeignKey("events.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Index("ix_media_event", "event_pk"),
    Index("ix_media_sha", "sha256"),
)

transitions = Table(
    "case_transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(32), ForeignKey("cases.case_id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("from_status", String(32)),
    Column("to_status", String(32), nullable=False),
    Column("note", Text),
    Column("unit", String(64)),
    Column("photo_sha256", String(64)),
    # What an undoable action (confirm, void) changed, as it was before: undo puts it back (hub.cases.transitions).
    Column("undo_values", JSON),
    Index("ix_transitions_case", "case_id"),
)

# Photos an Open311 client linked (media_url), fetched by the hub in the background (hub.open311.media):
# pending -> stored (the photo is a media row of the report's event) or failed (the link stays; `reason` says
# why), or off (fetching disabled when it was filed).
media_fetches = Table(
    "media_fetches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(32), nullable=False),
    Column("event_pk", Integer, nullable=False),
    Column("url", String(2000), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("sha256", String(64)),
    Column("content_type", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("claimed_at", UTCDateTime),  # a fetch claimed long ago by a hub that stopped is taken again
    Column("done_at", UTCDateTime),
    Index("ix_media_fetches_status", "status", "id"),
    Index("ix_media_fetches_case", "case_id"),
)

# Transactional outbox: every case change appends a row in the same transaction; SSE and webhooks
# read it by id, so they work across hub worker processes.
case_changes = Table(
    "case_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("case_id", String(32), nullable=False),
    Column("kind", String(32), nullable=False),  # case.created, case.updated, case.transition
    Column("status", String(32), nullable=False),
    Column("data", JSON),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("expires_at", UTCDateTime),  # None: never expires
    Column("last_used_at", UTCDateTime),  # to the minute (hub.auth.tokens.LAST_USED_EVERY)
)

# People's accounts (hub.auth.users): machines use api_tokens, people sign in with a password.
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(256), nullable=False),  # scrypt$N$r$p$salt$digest (hub.auth.passwords)
    Column("disabled", Boolean, nullable=False, default=False),
    Column("failed_attempts", Integer, nullable=False, default=0),  # wrong passwords in a row
    Column("locked_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_login_at", UTCDateTime),
)

# Browser sessions (hub.auth.sessions): the cookie secret only as its SHA-256.
sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime),  # the idle timeout counts from here (None: from created_at)
    Index("ix_sessions_user", "user_id"),
)

# Sign-in attempts per client address (hub.auth.rate): in the database so every hub process counts the same.
sign_in_attempts = Table(
    "sign_in_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client", String(128), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_sign_in_attempts_client_at", "client", "at"),
    Index("ix_sign_in_attempts_at", "at"),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", String(2000), nullable=False),
    Column("secret", String(256), nullable=False),
    Column("kinds", JSON, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("webhook_id", Integer, ForeignKey("webhooks.id"), nullable=False),
    Column("change_id", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    Column("delivered_at", UTCDateTime),
    UniqueConstraint("webhook_id", "change_id", name="uq_delivery_change"),
    Index("ix_deliveries_due", "status", "next_attempt_at"),
)

kv = Table(
    "kv",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# Model releases (hub.releases.registry): files the hub can push to agents, stored with the evidence
# files under their sha256, signed by the hub's Ed25519 key; which camera runs which; staged rollouts.
model_releases = Table(
    "model_releases",
    metadata,
    Column("release_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # fewshot, onnx
    Column("sha256", String(64), nullable=False, unique=True),
    Column("size", BigInteger, nullable=False),
    Column("backbone_sha256", String(64)),
    Column("metrics", JSON, nullable=False),
    Column("signature", String(128), nullable=False),  # hex Ed25519 of registry.descriptor(...)
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
)

model_assignments = Table(
    "model_assignments",
    metadata,
    Column("camera_id", String(64), primary_key=True),
    Column("release_id", Integer, ForeignKey("model_releases.release_id"), nullable=False),
    Column("previous_release_id", Integer),
    Column("stage", String(16), nullable=False),  # canary, fleet
    Column("assigned_at", UTCDateTime, nullable=False),
    Column("assigned_by", String(128), nullable=False),
)

model_rollouts = Table(
    "model_rollouts",
    metadata,
    Column("rollout_id", Integer, primary_key=True, autoincrement=True),
    Column("release_id", Integer, ForeignKey("model_releases.release_id"), nullable=False),
    Column("previous_release_id", Integer),
    Column("canary", JSON, nullable=False),  # camera ids
    Column("rest", JSON, nullable=False),  # camera ids that follow on promotion
    Column("status", String(16), nullable=False),  # canary, promoted, rolled_back
    Column("policy", JSON, nullable=False),  # hub.releases.rollout.RolloutPolicy
    Column("baseline_detect_ms", Float),  # the canaries' detect time before the switch
    Column("started_at", UTCDateTime, nullable=False),
    Column("started_by", String(128), nullable=False),
    Column("decided_at", UTCDateTime),
    Column("reason", Text),
)

model_audit = Table(
    "model_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(16), nullable=False),  # register, deploy, canary, promote, rollback
    Column("release_id", Integer),
    Column("rollout_id", Integer),
    Column("cameras", JSON, nullable=False),
    Column("note", Text, nullable=False),
    Index("ix_model_audit_rollout", "rollout_id"),
)

# Reviewers' labels on a case's frame (hub.releases.labels): boxes drawn, moved and relabelled, or
# "nothing here"; exported with the confirmed and voided cases as a labels file for `cityeye models dataset`.
frame_labels = Table(
    "frame_labels",
    metadata,
    Column("case_id", String(32), ForeignKey("cases.case_id"), primary_key=True),
    Column("image_sha256", String(64), nullable=False),
    Column("camera_id", String(64)),
    Column("taken_at", UTCDateTime, nullable=False),
    Column("nothing_here", Boolean, nullable=False, default=False),
    Column("boxes", JSON, nullable=False),  # [{"label": ..., "box": [x1, y1, x2, y2]}] normalised
    Column("labelled_by", String(128), nullable=False),
    Column("labelled_at", UTCDateTime, nullable=False),
)

# Frames sampled from the bureau's cameras (`cityeye models sample --hub`) waiting for labels: the
# detector's boxes on them are proposals (pre-labels) a reviewer corrects (hub.releases.sampled).
sampled_frames = Table(
    "sampled_frames",
    metadata,
    Column("frame_id", String(32), primary_key=True),  # the image's sha256, first 32 hex digits
    Column("image_sha256", String(64), nullable=False),
    Column("camera_id", String(64), nullable=False),
    Column("taken_at", UTCDateTime, nullable=False),
    Column("proposals", JSON, nullable=False),  # [{"label", "box", "score"}] from the model below
    Column("proposed_by", JSON),  # {"name", "sha256"} of the detector that pre-labelled it
    Column("uploaded_by", String(128), nullable=False),
    Column("uploaded_at", UTCDateTime, nullable=False),
    Column("boxes", JSON),  # the reviewer's boxes; NULL until reviewed
    Column("nothing_here", Boolean, nullable=False, default=False),
    Column("labelled_by", String(128)),
    Column("labelled_at", UTCDateTime),
    Index("ix_sampled_frames_todo", "labelled_at", "uploaded_at"),
)

label_names = Table(  # labels an admin added beyond the catalog's
    "label_names",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("name_zh", String(64)),  # what reviewers read (required for labels added since schema 10)
    Column("name_en", String(64)),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Model pushes per device (hub.releases.pushes): the release its cameras should run, numbered per device.
model_pushes = Table(
    "model_pushes",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("release_id", Integer, ForeignKey("model_releases.release_id"), nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | accepted | rejected
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("sent_at", UTCDateTime),
    Column("answered_at", UTCDateTime),
    Column("error", Text),
)

# ---- running cameras from the hub (hub.fleet) ---------------------------------------------------

# Every version of each camera's config: imported from its agent's report, or saved on the page; the
# newest is pushed to the agent (pending -> sent -> accepted | rejected, with the agent's error).
camera_configs = Table(
    "camera_configs",
    metadata,
    Column("camera_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("device_id", String(64), nullable=False),
    Column("body", JSON, nullable=False),  # the config without its source (that stays on the box)
    Column("origin", String(16), nullable=False),  # device (imported) | hub (saved on the page)
    Column("status", String(16), nullable=False),  # imported | pending | sent | accepted | rejected
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("sent_at", UTCDateTime),
    Column("answered_at", UTCDateTime),
    Column("error", Text),
    Column("issues", JSON),
)

# Change-rule references to re-take (hub.fleet.retakes): a case of a `source: change` rule verified clear
# asks the camera's agent to adopt how the place looks now. Numbered per camera; pending -> sent ->
# accepted | rejected, or superseded by a newer retake of the same place before it was sent.
reference_retakes = Table(
    "reference_retakes",
    metadata,
    Column("camera_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("device_id", String(64), nullable=False),
    Column("zone", String(64)),
    Column("box", JSON),  # the case's NormBox: the place re-taken inside the zone
    Column("case_id", String(32)),
    Column("status", String(16), nullable=False),  # pending | sent | accepted | rejected | superseded
    Column("created_at", UTCDateTime, nullable=False),  # when the case was verified: the agent's "as of"
    Column("created_by", String(128), nullable=False),
    Column("sent_at", UTCDateTime),
    Column("answered_at", UTCDateTime),
    Column("error", Text),
)

# What each camera's agent says it runs, and the snapshot asked of it.
camera_config_state = Table(
    "camera_config_state",
    metadata,
    Column("camera_id", String(64), primary_key=True),
    Column("device_id", String(64), nullable=False),
    Column("running_version", Integer, nullable=False),
    Column("managed_by", String(8), nullable=False),  # hub | local
    Column("reported_at", UTCDateTime, nullable=False),
    Column("snapshot_requested_at", UTCDateTime),
    Column("snapshot_sent_at", UTCDateTime),
)

# Who changed which camera config, what changed, and what the agent answered.
config_audit = Table(
    "config_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("camera_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("action", String(16), nullable=False),  # imported | saved | sent | accepted | rejected
    Column("detail", Text),
    Column("changes", JSON),  # [{path, old, new}]
    Index("ix_config_audit_camera", "camera_id", "id"),
)

# The bureau's own days off and working days on top of the official calendar (hub.cases.bureau_days).
calendar_days = Table(
    "calendar_days",
    metadata,
    Column("day", String(10), primary_key=True),  # ISO date
    Column("kind", String(8), nullable=False),  # off | work
    Column("set_by", String(128)),
    Column("set_at", UTCDateTime),
)
