"""Camera configs set by the hub: checked like `cityeye edge check-config`, applied live, kept on disk.

A box is managed locally (its YAML files, the hub only shows them) or by the hub. Managed by the hub,
each push (protocol.push, kind camera_config) is verified (hub signature), merged with the box-only
fields of the local YAML (`source`: the stream's address and credentials never leave the box),
validated by `parse_camera_config`, written to `<state_dir>/<camera>.json` (the last good one, used
at the next start instead of the YAML) and handed to the running pipeline. A config that fails is
rejected with every problem and its field path, and the camera keeps what it ran.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent.config import CameraConfig, ConfigError, ConfigIssue, format_path, parse_camera_config
from edge_agent.metrics import EdgeMetrics
from edge_agent.spool import write_durable
from protocol.catalog import Catalog
from protocol.codec import PushMessage
from protocol.push import (
    LOCAL_FIELDS,
    ManagedBy,
    Push,
    PushIssue,
    PushKind,
    PushRefused,
    PushResult,
    open_push,
    strip_local,
)

log = logging.getLogger(__name__)

# read when the agent starts only
STARTUP_FIELDS = ("model", "detector_threads", "detector_sessions", "detect_input", "loop", "start_time")
SOURCE_ON_THE_BOX = "source-kept-on-the-box.mp4"  # what the hub checks with: it never sees the real source

Apply = Callable[[CameraConfig], None]


def config_body(cfg: CameraConfig) -> dict[str, Any]:
    """A config as the hub holds it: JSON values, without the box-only fields."""
    return strip_local(cfg.model_dump(mode="json", exclude_none=True))


def validate_body(local: CameraConfig, body: dict[str, Any], *, file: str,
                  catalog: Catalog | None = None) -> CameraConfig:
    """`body` (a config without the box-only fields) on top of the box's `local` config, checked as
    check-config checks a file, and refused where it changes what is read at start only."""
    on_the_box = {f: getattr(local, f) for f in LOCAL_FIELDS if getattr(local, f) is not None}
    cfg = parse_camera_config({**body, **on_the_box}, file=file, catalog=catalog)
    changed = [f for f in STARTUP_FIELDS if getattr(cfg, f) != getattr(local, f)]
    if changed:
        raise ConfigError([ConfigIssue(file, f, None, f"is read when the agent starts only ({getattr(local, f)!r} "
                                       "on this box); change it in the box's YAML") for f in changed])
    return cfg


def check_for_hub(body: dict[str, Any], running: dict[str, Any]) -> list[dict[str, str]]:
    """The agent's check of a push, run by the hub before it saves (hub.fleet.check): `running` is the
    config the box reported (without its source). Problems as {path, message}."""
    try:
        local = parse_camera_config({**running, "source": SOURCE_ON_THE_BOX}, file="running")
    except ConfigError:  # what the box runs no longer validates here (another agent version): check alone
        local = None
    try:
        if local is None:
            parse_camera_config({**body, "source": SOURCE_ON_THE_BOX}, file="config")
        else:
            validate_body(local, body, file="config")
    except ConfigError as exc:
        return [{"path": i.path, "message": i.message} for i in exc.issues]
    return [{"path": i.path, "message": i.message} for i in local_field_issues(body)]


def local_field_issues(body: dict[str, Any]) -> list[PushIssue]:
    """A pushed config may not set the video sources: they are set in the box's YAML only."""
    return [PushIssue(path=f, message="the video source is set in the box's YAML, never from the hub")
            for f in LOCAL_FIELDS if f in body]


class ManagedConfigs:
    """The cameras of one agent and the hub versions they run."""

    def __init__(self, local: Sequence[CameraConfig], state_dir: Path, *, device_id: str,
                 hub_sign_public: str | None, managed: bool = True, catalog: Catalog | None = None) -> None:
        self.state_dir = state_dir
        self.device_id = device_id
        self.hub_sign_public = hub_sign_public
        self.managed = managed
        self.catalog = catalog
        self.local = {c.id: c for c in local}
        self.current: dict[str, CameraConfig] = dict(self.local)
        self.versions: dict[str, int] = dict.fromkeys(self.local, 0)
        self._apply: Apply | None = None
        self._metrics: EdgeMetrics | None = None
        self._lock = threading.Lock()
        if managed:
            self._load_kept()

    def configs(self) -> list[CameraConfig]:
        """What the cameras run now (at start: the kept hub configs where there are any)."""
        return list(self.current.values())

    def attach(self, apply: Apply, metrics: EdgeMetrics | None = None) -> None:
        """From now on, accepted configs go to `apply` (Pipeline.reconfigure), and their versions into
        `metrics` (heartbeats report them)."""
        self._metrics = metrics
        self._apply = apply
        for camera_id in self.current:
            self._set_version(camera_id, self.versions[camera_id])

    def _set_version(self, camera_id: str, version: int) -> None:
        self.versions[camera_id] = version
        if self._metrics is not None:
            self._metrics.camera(camera_id).config_version = version

    def _state_file(self, camera_id: str) -> Path:
        return self.state_dir / f"{camera_id}.json"

    def _load_kept(self) -> None:
        for camera_id, local in self.local.items():
            path = self._state_file(camera_id)
            if not path.exists():
                continue
            try:
                kept = json.loads(path.read_text(encoding="utf-8"))
                cfg = self._validate(local, kept["body"], file=str(path))
            except (OSError, ValueError, KeyError) as exc:  # ConfigError is a ValueError
                log.error("camera %s: kept hub config %s is unusable, running the local YAML: %s",
                          camera_id, path, exc)
                continue
            self.current[camera_id] = cfg
            self.versions[camera_id] = int(kept["version"])
            log.info("camera %s: running hub config version %d (kept in %s)", camera_id, kept["version"], path)

    def _validate(self, local: CameraConfig, body: dict[str, Any], *, file: str) -> CameraConfig:
        from edge_agent.zone_state import head_issues  # head files live on this box: the hub cannot check them

        cfg = validate_body(local, body, file=file, catalog=self.catalog)
        missing = head_issues(cfg.rules, self.catalog)
        if missing:
            raise ConfigError([ConfigIssue(file, format_path(path), None, msg) for path, msg in missing])
        return cfg

    # --- pushes -----------------------------------------------------------------------------------

    def handle(self, msg: PushMessage) -> PushResult:
        """Check, keep and apply one camera-config push; the answer for the hub."""
        push = msg.push
        try:
            open_push(bytes(msg.payload), bytes(msg.signature), self.hub_sign_public, self.device_id)
        except PushRefused as exc:
            log.error("push %s %s v%d refused: %s", push.kind, push.target, push.version, exc)
            return self._result(push, accepted=False, error=str(exc))
        if push.kind is not PushKind.CAMERA_CONFIG:
            return self._result(push, accepted=False, error=f"kind {push.kind.value}: not handled by this agent")
        if not self.managed:
            return self._result(push, accepted=False, error="this box is managed locally (its YAML files); "
                                "start the agent without --local-config to take configs from the hub")
        with self._lock:
            return self._apply_push(push)

    def _apply_push(self, push: Push) -> PushResult:
        camera_id = push.target
        local = self.local.get(camera_id)
        if local is None:
            return self._result(push, accepted=False, error=f"camera {camera_id} is not on this device "
                                f"(it runs {', '.join(sorted(self.local)) or 'no camera'})")
        running = self.versions[camera_id]
        if push.version <= running:  # a resend, or an old push overtaken by a newer one
            return self._result(push, accepted=push.version == running,
                                error=None if push.version == running else f"version {push.version} is older "
                                f"than version {running} this camera runs")
        if local_field_issues(push.body):
            return self._result(push, accepted=False, issues=local_field_issues(push.body))
        try:
            cfg = self._validate(local, push.body, file=f"hub config v{push.version}")
        except ConfigError as exc:
            log.error("camera %s: hub config version %d rejected:\n%s", camera_id, push.version, exc)
            return self._result(push, accepted=False, error=str(exc)[:4000],
                                issues=[PushIssue(path=i.path, message=i.message[:1000]) for i in exc.issues[:64]])
        self.state_dir.mkdir(parents=True, exist_ok=True)
        write_durable(self._state_file(camera_id), json.dumps(
            {"version": push.version, "issued_by": push.issued_by, "issued_at": push.issued_at.isoformat(),
             "kept_at": datetime.now(UTC).isoformat(), "body": push.body}, ensure_ascii=False,
            indent=1).encode())
        self.current[camera_id] = cfg
        if self._apply is not None:
            self._apply(cfg)
        self._set_version(camera_id, push.version)
        log.info("camera %s: hub config version %d by %s applied", camera_id, push.version, push.issued_by)
        return self._result(push, accepted=True)

    def _result(self, push: Push, *, accepted: bool, error: str | None = None,
                issues: list[PushIssue] | None = None) -> PushResult:
        if error is None and issues:
            error = "; ".join(f"{i.path}: {i.message}" for i in issues)
        return PushResult(device_id=self.device_id, kind=push.kind, target=push.target, version=push.version,
                          accepted=accepted, managed_by=self.managed_by(), error=error,
                          issues=issues or [])

    def managed_by(self) -> ManagedBy:
        return ManagedBy.HUB if self.managed else ManagedBy.LOCAL

    def reports(self) -> list[PushResult]:
        """What each camera runs, for the hub when the link comes up (it pushes what the box missed).
        None to a hub whose bundle carries no signing key: it predates pushes and would not read them."""
        if not self.hub_sign_public:
            return []
        with self._lock:
            return [PushResult(device_id=self.device_id, kind=PushKind.CAMERA_CONFIG, target=cid,
                               version=self.versions[cid], accepted=True, report=True,
                               managed_by=self.managed_by(),
                               current=config_body(cfg)) for cid, cfg in self.current.items()]
