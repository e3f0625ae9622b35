"""Every refusal the hub's API can answer with, by a stable machine code: the one registry.

An error body is `{"detail": ..., "code": "<code>", "params": {...}}`. `detail` is English for people
reading the API (a string, or the list of field errors of a malformed request); `code` and `params` are
for programs: the reviewer page words each code in the reader's language from its catalogue
(hub/web/i18n.js, keys `code.<code>`, filled from `params`), and tests/hub/web/test_error_codes.py checks
the catalogue has zh-CN and English text for every code registered here. A code's meaning never changes;
add a new code rather than reuse one. Open311 routes keep GeoReport's own error shape (its spec's).

Raise `Refused(CODE, "english detail", param=value, ...)` from a route or a service; domain errors that
subclass it (hub.cases.lifecycle.TransitionError) carry their code the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Code:
    name: str
    status: int  # the HTTP status it is answered with
    params: tuple[str, ...]  # the names `params` always holds (the catalogue's text may use them)
    doc: str


REGISTRY: dict[str, Code] = {}


def _code(name: str, status: int, doc: str, *params: str) -> Code:
    if name in REGISTRY:
        raise ValueError(f"error code {name!r} registered twice")
    REGISTRY[name] = code = Code(name, status, params, doc)
    return code


class Refused(Exception):
    """A refused request: answered with `code.status` and the body the module docstring describes."""

    def __init__(self, code: Code, detail: Any, *, headers: dict[str, str] | None = None, **params: Any) -> None:
        missing = set(code.params) - params.keys()
        if missing:  # a programming error: the catalogue's text would show a raw {placeholder}
            raise TypeError(f"error code {code.name!r} needs params {sorted(missing)}")
        super().__init__(detail if isinstance(detail, str) else code.name)
        self.code, self.detail, self.params, self.headers = code, detail, params, headers

    @property
    def status_code(self) -> int:
        return self.code.status

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code.name, "params": self.params}


def field_of(loc: Any) -> str:
    """The dotted field path of a validation error's `loc`, without where it was sent (body, query...)."""
    parts = [str(p) for p in (loc or ())]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts)


def invalid_params(items: list[dict[str, Any]]) -> dict[str, Any]:
    first = items[0] if items else {}
    return {"field": field_of(first.get("loc")), "kind": str(first.get("type", "")),
            "fields": [field_of(i.get("loc")) for i in items]}


# ---- any request
HTTP_ERROR = _code("http_error", 400, "an HTTP error the framework raised without a code", "status")
NOT_FOUND = _code("not_found", 404, "no such path, or no such item (token, webhook, release, evidence file)")
METHOD_NOT_ALLOWED = _code("method_not_allowed", 405, "the path exists, not with this method")
INVALID = _code("invalid", 422, "a field's value is refused; `field` names it (dotted path), `kind` says how",
                "field", "kind")
INVALID_REQUEST = _code("invalid_request", 422, "the request as a whole does not fit (detail says why)")
NO_ACCESS_POLICY = _code("no_access_policy", 403, "a route that declares no access policy is refused")

# ---- who is calling
TOKEN_MISSING = _code("token_missing", 401, "no API token and no session cookie")
TOKEN_UNKNOWN = _code("token_unknown", 401, "the API token is unknown or revoked")
TOKEN_EXPIRED = _code("token_expired", 401, "the API token's expiry has passed")
SESSION_ENDED = _code("session_ended", 401, "signed out, or the account changed or was disabled")
SESSION_EXPIRED = _code("session_expired", 401, "the session reached its absolute lifetime (session_hours)")
SESSION_IDLE = _code("session_idle", 401, "no request for longer than session_idle_minutes", "minutes")
CSRF = _code("csrf", 403, "a signed-in browser's change without the session's X-CSRF-Token")
DEVICE_AUTH = _code("device_auth", 401, "a device-signed request whose signature or time does not verify")
DEVICE_REFUSED = _code("device_refused", 403, "the device is not enrolled, or revoked")
ROLE_FORBIDDEN = _code("role_forbidden", 403, "the caller's role may not call this route", "role")
BAD_CREDENTIALS = _code("bad_credentials", 401, "wrong user name or password", "max_failures")
LOCKED = _code("locked", 423, "the account is locked after too many wrong passwords", "locked_until")
DISABLED = _code("disabled", 403, "the account is disabled")
RATE_LIMITED = _code("rate_limited", 429, "too many sign-in attempts from this address", "retry_after_s")

# ---- cases
CASE_NOT_FOUND = _code("case_not_found", 404, "no such case", "case_id")
ILLEGAL_TRANSITION = _code("illegal_transition", 409, "the action does not apply to the case's status now "
                           "(often: someone else acted first)", "action", "status")
TRANSITION_FORBIDDEN = _code("transition_forbidden", 403, "the role may not take this action", "role", "action")
NEEDS_NOTE = _code("needs_note", 422, "the action needs a note giving the reason", "action")
NEEDS_PHOTO = _code("needs_photo", 422, "the action needs the uploaded photo of the result", "action")
PHOTO_UNKNOWN = _code("photo_unknown", 422, "photo_sha256 names no uploaded evidence file")
NEEDS_UNIT = _code("needs_unit", 422, "dispatch without a unit and no routing rule matches")
UNKNOWN_UNIT = _code("unknown_unit", 422, "the unit is not configured", "unit")
NO_PLATE_CLASS = _code("no_plate_class", 422, "cases of this class carry no plate", "class_id")
NOTHING_TO_UNDO = _code("nothing_to_undo", 409, "the case's last change is not a confirm or void")
UNDO_NOT_YOURS = _code("undo_not_yours", 403, "only the actor of a confirm or void may undo it", "actor", "action")
UNDO_SUPERSEDED = _code("undo_superseded", 409, "the case moved on since the confirm or void", "action", "status")
UNDO_LATE = _code("undo_late", 409, "the undo grace period is over", "seconds")
PLATE_FORBIDDEN = _code("plate_forbidden", 403, "the role may not see or search licence plates", "role")
ADDRESS_REFUSED = _code("address_refused", 422, "a report with an address but no place, which this hub refuses")
UNKNOWN_CLASS = _code("unknown_class", 422, "no such problem class", "class_id")

# ---- evidence
IMAGE_MISSING = _code("image_missing", 404, "the case has no image of that kind", "kind")
PACKAGE_TOO_LARGE = _code("package_too_large", 413, "the evidence package would exceed the size limit")
PACKAGE_FAILED = _code("package_failed", 500, "the evidence package could not be built")
UPLOAD_TOO_LARGE = _code("upload_too_large", 413, "the uploaded file is too large", "max_mb")
UPLOAD_NOT_JPEG = _code("upload_not_jpeg", 415, "only JPEG photos are accepted")

# ---- cameras, configs, labels, models
CAMERA_UNKNOWN = _code("camera_unknown", 404, "no agent has reported this camera", "camera_id")
SNAPSHOT_MISSING = _code("snapshot_missing", 404, "no snapshot of the camera yet", "camera_id")
CONFIG_HAS_ERRORS = _code("config_has_errors", 422, "the camera config has errors (detail.issues); nothing saved")
CONFIG_STALE = _code("config_stale", 409, "someone saved a newer config version meanwhile", "camera_id", "latest")
LABEL_REFUSED = _code("label_refused", 422, "a label or box is refused (detail says which)")
FRAME_NOT_FOUND = _code("frame_not_found", 404, "no such case, or it has no frame to label")
MODEL_TOO_LARGE = _code("model_too_large", 413, "the model file is too large", "max_mb")
RELEASE_CONFLICT = _code("release_conflict", 409, "the model release or rollout conflicts with the current one")
