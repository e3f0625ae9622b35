"""Camera configuration: one YAML file per camera, validated before anything starts.

```yaml
id: plaza-east
source: rtsp://user:pass@10.0.0.5/stream1     # or http(s)://..., a file path, or a device index
timezone: Asia/Shanghai
detect_fps: 2
zones:
  - {id: np_top_right, kind: no_parking, polygon: [[0.62, 0.05], [1, 0.05], [1, 0.45], [0.62, 0.45]]}
rules:
  - {class_id: illegal_car_parking, zones: [np_top_right], params: {min_dwell_s: 30}}
```

Each stage owns the model of its own knobs (`MotionConfig` in motion.py, `TrackerConfig` in
track.py, `ZoneConfig`, `RuleConfig`); this module assembles them and adds the checks that span
objects, each a small named function whose message names the camera and the parts involved.
`load_camera_config` turns every problem into `file:line: field.path: message`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from edge_agent.change.params import ChangeConfig
from edge_agent.motion import MotionConfig
from edge_agent.plates.watch import PlateConfig
from edge_agent.rules.config import RuleConfig
from edge_agent.rules.engine import rule_zone_issues
from edge_agent.schedule import check_timezone
from edge_agent.track import TrackerConfig
from edge_agent.zones import ZoneConfig
from protocol.catalog import Catalog, default_catalog

if TYPE_CHECKING:
    from calibration.homography import GroundHomography

ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
REFERENCE_WH = (1920, 1080)  # frame size calibration fits are checked at before a frame is seen
SKIP_CROSS_CHECKS = "skip_cross_checks"


class StrictConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvidenceConfig(StrictConfig):
    """What each event carries: stills, a crop and a short clip around the moment it fired."""

    pre_s: float = Field(5.0, ge=0.0, le=30.0, description="seconds of clip before the event (ring buffer)")
    post_s: float = Field(
        5.0, ge=0.0, le=30.0, description="seconds of clip after the event; the event is sent when they are in")
    clip_fps: float | None = Field(
        None, gt=0.0, le=30.0,
        description="frame rate of the clip and its ring buffer; default: the detect rate (no extra decoding)")
    jpeg_quality: int = Field(90, ge=30, le=100, description="JPEG quality of the stills")
    blur_faces: bool = Field(
        False, description="blur the heads of people on the annotated copy (the original is never altered)")
    crop_margin: float = Field(0.15, ge=0.0, le=1.0, description="margin around the object in the crop")
    clip: bool = Field(True, description="false sends stills only (saves CPU and bandwidth)")


class CalibrationPoint(StrictConfig):
    image: tuple[float, float] = Field(description="[x, y] in 0-1 of the frame")
    world: tuple[float, float] = Field(description="[x, y] metres, or [lon, lat] degrees when crs is wgs84")

    @field_validator("image")
    @classmethod
    def _normalised(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= v <= 1.0 for v in value):
            raise ValueError(f"image point {list(value)} is outside 0-1; use fractions of the frame")
        return value


class CalibrationConfig(StrictConfig):
    """Image <-> ground reference points; >= 4 give a homography for each problem's ground position."""

    crs: str = Field(pattern=r"^(wgs84|local:[A-Za-z0-9_.-]{1,64})$",
                     description='"wgs84" (lon/lat) or "local:<site>" (metres in that site\'s frame)')
    points: list[CalibrationPoint] = Field(min_length=4, description=">= 4 image/world pairs, not collinear")
    ransac_px: float = Field(
        4.0, gt=0.0, le=50.0, description="RANSAC threshold in pixels of the reference frame; a point further "
        "off than this from the others' fit is a config error (a mis-typed or mis-paired point)")
    max_error_m: float = Field(
        2.0, gt=0.0, description="largest acceptable RMS error of the fit on the ground, in metres")

    def image_px(self, frame_wh: tuple[int, int] = REFERENCE_WH) -> np.ndarray:
        """(N, 2) image points in pixels of a `frame_wh` frame (the config holds fractions of the frame)."""
        return np.array([p.image for p in self.points], dtype=np.float64) * np.array(frame_wh, dtype=np.float64)

    def fit(self, frame_wh: tuple[int, int] = REFERENCE_WH) -> GroundHomography:
        """The image <-> ground homography for frames of `frame_wh` pixels:
        image points are fractions of the frame. ValueError when the points give no fit."""
        from calibration.homography import fit_homography

        world = np.array([p.world for p in self.points], dtype=np.float64)
        return fit_homography(self.image_px(frame_wh), world, self.crs, ransac_px=self.ransac_px)


class CameraConfig(StrictConfig):
    """One camera: where its video comes from, how it is analysed, and its zones and rules."""

    id: str = Field(pattern=ID_PATTERN, description="camera id, unique per device; events carry it")
    source: str | int = Field(
        description="rtsp://..., http(s)://... (MJPEG/HLS), a video file path, or a device index (0, 1, ...)")
    detect_source: str | int | None = Field(
        None, description="the camera's low-resolution sub-stream (rtsp://..., a file): detection, tracking and "
        "rules run on it, while `source` (the main stream) is only demuxed and decoded for evidence when a rule "
        "fires. Same camera, same view: boxes map between the two by scale. Default: detect on `source`")
    timezone: str = Field(
        description="IANA timezone of the camera's location (e.g. Asia/Shanghai); schedules are read in it. "
        "Required: a wrong default would silently shift every time window")
    detect_fps: float = Field(
        2.0, gt=0.0, le=30.0,
        description="frames per second sampled for motion gating and detection; 1-5 is plenty for "
        "dwell rules, line crossing wants 5+")
    model: str = Field("coco-nanodet", min_length=1,
                       description="cached model name, .onnx path or few-shot head (.json)")
    detector_threads: int | None = Field(
        None, ge=1, le=64, description="onnxruntime intra-op threads per detector session; default: 1 with "
        "several sessions, all cores with one")
    detector_sessions: int | None = Field(
        None, ge=1, le=16, description="detector sessions run side by side, each on its share of a batch; default: "
        "one per core (bench/edge.py: single-threaded sessions side by side beat one session on all cores), or "
        "one when detector_threads is set")
    detect_input: Literal["model", "native"] = Field(
        "model", description="model: every frame is stretched to the detector's exported size (416x416); "
        "native: a NanoDet runs at the frame's aspect, e.g. 416x320 for a 4:3 sub-stream (~22% less detector "
        "CPU, bench/edge.py; detections differ a little, so it is opt-in). Agent-wide: any camera asking for "
        "native turns it on")
    loop: bool = Field(
        False, description="file sources only: replay the file forever at real speed (demos, soak tests); "
        "without it a file source ends the agent's run at its end")
    stall_s: float = Field(
        5.0, ge=0.5, le=300.0,
        description="live sources: no frame for this long marks the camera stalled (offline) and reconnects")
    max_frame_age_s: float = Field(
        2.0, gt=0.0, le=60.0,
        description="live sources: a frame made longer ago than this (buffered while the agent or the network "
        "stood still) is dropped, never fed to the rules")
    rtsp_transport: Literal["tcp", "udp"] = Field(
        "tcp", description="RTSP transport; UDP loses packets on busy networks and smears H.264 frames")
    start_time: datetime | None = Field(
        None, description="wall-clock time of the first frame for file sources (replays), so schedules can "
        "be tested on footage; without a timezone it is read in `timezone`")
    motion: MotionConfig = Field(default_factory=MotionConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    calibration: CalibrationConfig | None = None
    place: str | None = Field(
        None, max_length=64, description="where the camera looks, as people name it (长江路东段): burned into "
        "the parking stills beside the time and the camera id")
    plates: PlateConfig = Field(default_factory=PlateConfig)
    change: ChangeConfig = Field(default_factory=ChangeConfig,
                                 description="change detection, for rules with `source: change`")
    zones: list[ZoneConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("source", "detect_source")
    @classmethod
    def _source_not_blank(cls, value: str | int | None, info: ValidationInfo) -> str | int | None:
        if isinstance(value, int) and value < 0:
            raise ValueError(f"device index must be >= 0, got {value}")
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"{info.field_name} is empty")
        return value

    @model_validator(mode="after")
    def _loop_needs_file(self) -> CameraConfig:
        from edge_agent.ingest import SourceKind, source_kind

        for source in (self.source, self.detect_source):
            if self.loop and source is not None and source_kind(source) != SourceKind.FILE:
                raise ValueError(f"loop: only a file source can loop, {source!r} is a live source")
        return self

    @model_validator(mode="after")
    def _main_stream_is_a_stream(self) -> CameraConfig:
        from edge_agent.ingest import SourceKind, source_kind

        if self.detect_source is not None and source_kind(self.source) == SourceKind.DEVICE:
            raise ValueError(f"source: with a detect_source, source is the main stream and must be a stream URL "
                             f"or a file, not the device index {self.source!r}")
        return self

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> CameraConfig:
        if isinstance(info.context, dict) and info.context.get(SKIP_CROSS_CHECKS):
            return self  # the loader runs them itself to report each with its own path
        catalog = info.context.get("catalog") if isinstance(info.context, dict) else None
        problems = [msg for _, msg in cross_check_issues(self, catalog)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def start_epoch(self) -> float | None:
        """`start_time` as epoch seconds (a naive time is local to the camera)."""
        if self.start_time is None:
            return None
        start = self.start_time
        if start.tzinfo is None:
            start = start.replace(tzinfo=ZoneInfo(self.timezone))
        return start.timestamp()

    def main_stream_keep_s(self) -> float:
        """Seconds of main-stream packets kept for evidence: the clip's span, plus slack for an event
        waiting on the evidence worker and a detect stream running ahead of the main one."""
        return self.evidence.pre_s + self.evidence.post_s + 10.0

    def clip_fps(self) -> float:
        return self.evidence.clip_fps or self.detect_fps

    def sample_fps(self) -> float:
        """Frames per second the pipeline looks at: detection and clip frames come from the same samples."""
        return max(self.detect_fps, self.clip_fps())


# --- checks that span objects: each returns (path, message) pairs -------------------------------

Path_ = tuple[str | int, ...]
Check = Callable[[CameraConfig], list[tuple[Path_, str]]]


def check_rules_and_zones(cfg: CameraConfig, catalog: Catalog | None = None) -> list[tuple[Path_, str]]:
    """Zone and rule ids unique, rules' zones defined and of the right shape (one implementation,
    shared with the rule engine: `edge_agent.rules.engine.rule_zone_issues`)."""
    return rule_zone_issues(cfg.rules, cfg.zones, catalog or default_catalog(), camera_id=cfg.id)


def check_grace_covers_recheck(cfg: CameraConfig) -> list[tuple[Path_, str]]:
    """With motion gating, a still object is only re-detected every `recheck_interval_s`: a shorter
    grace window would drop its track between re-checks and restart every dwell timer."""
    if not cfg.motion.enabled or cfg.tracker.lost_grace_s > cfg.motion.recheck_interval_s:
        return []
    return [(("tracker", "lost_grace_s"),
             f"camera {cfg.id!r}: tracker.lost_grace_s ({cfg.tracker.lost_grace_s}) must exceed "
             f"motion.recheck_interval_s ({cfg.motion.recheck_interval_s}), or parked objects lose their "
             "track between re-checks")]


def check_calibration_not_collinear(cfg: CameraConfig) -> list[tuple[Path_, str]]:
    if cfg.calibration is None:
        return []
    pts = np.array([p.image for p in cfg.calibration.points], dtype=np.float64)
    centred = pts - pts.mean(axis=0)
    if np.linalg.matrix_rank(centred, tol=1e-3) < 2:
        return [(("calibration", "points"), f"camera {cfg.id!r}: calibration image points lie on one line; "
                 "a homography needs them spread over the ground")]
    return []


def check_calibration_fits(cfg: CameraConfig) -> list[tuple[Path_, str]]:
    """The ground homography must fit every point (within ransac_px at the REFERENCE_WH frame size) and
    be accurate to `max_error_m` on the ground: a bad fit would put every event in the wrong place."""
    cal = cfg.calibration
    if cal is None or check_calibration_not_collinear(cfg):
        return []
    where = f"camera {cfg.id!r}: calibration"
    try:
        fit = cal.fit()
    except ValueError as exc:
        return [(("calibration", "points"), f"{where}: {exc}")]
    out: list[tuple[Path_, str]] = []
    image = cal.image_px(REFERENCE_WH)
    for i in np.flatnonzero(~fit.inliers):
        off = float(np.linalg.norm(fit.world_to_image(np.array([cal.points[i].world]))[0] - image[i]))
        out.append((("calibration", "points", int(i)),
                    f"{where}: this point is {off:.0f} px (at the 1920x1080 reference) from where the other "
                    f"points put it (ransac_px {cal.ransac_px:g}); mis-typed, or paired with the wrong world point?"))
    if not out and fit.error_m > cal.max_error_m:
        out.append((("calibration", "points"), f"{where}: the fit is off by {fit.error_m:.2f} m RMS on the "
                    f"ground, over max_error_m {cal.max_error_m:g}; check the points"))
    return out


CROSS_CHECKS: tuple[Check, ...] = (
    check_grace_covers_recheck, check_calibration_not_collinear, check_calibration_fits,
)


# --- loading with precise error messages --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    file: str
    path: str  # e.g. "zones[1].polygon"; "" for the whole file
    line: int | None  # 1-based YAML line of the offending value
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ValueError):
    """A camera config that cannot be used; `issues` lists every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def format_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_TYPE_TAGS = re.compile(r"^(str|int|float|bool|list|dict|tuple|none|.*\[.*\])$")


def _yaml_node_at(root: yaml.Node | None, loc: Sequence[str | int]) -> tuple[yaml.Node | None, list[str | int]]:
    """The deepest YAML node along `loc` and the part of `loc` that exists in the file."""
    node, walked = root, list[str | int]()
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            child = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node, walked = child, [*walked, part]
    return node, walked


def _issue(file: str, root: yaml.Node | None, loc: Sequence[str | int], message: str) -> ConfigIssue:
    node, walked = _yaml_node_at(root, loc)
    # Keep field names that are missing from the file (a required key), drop pydantic's union tags.
    rest = [p for p in loc[len(walked):] if isinstance(p, int) or not _TYPE_TAGS.match(str(p))]
    line = node.start_mark.line + 1 if node is not None and node is not root else None
    return ConfigIssue(file, format_path([*walked, *rest]), line, message)


def cross_check_issues(cfg: CameraConfig, catalog: Catalog | None = None) -> list[tuple[Path_, str]]:
    """Every cross-object problem of a config whose parts are each valid: (field path, message)."""
    return check_rules_and_zones(cfg, catalog) + [item for check in CROSS_CHECKS for item in check(cfg)]


def parse_camera_config(data: Any, *, file: str = "<config>", root: yaml.Node | None = None,
                        catalog: Catalog | None = None) -> CameraConfig:
    """Validate already-loaded YAML data; raises ConfigError naming `file`, field paths and lines.

    Field errors are reported all at once; cross-object checks run once the parts are valid (a rule
    cannot be checked against a zone that failed to parse).
    """
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(file, "", None, "a camera config must be a YAML mapping "
                                       f"(id: ..., source: ...), got {type(data).__name__}")])
    catalog = catalog or default_catalog()
    context = {"catalog": catalog, SKIP_CROSS_CHECKS: True}
    try:
        cfg = CameraConfig.model_validate(data, context=context)
    except ValidationError as exc:
        issues = [_issue(file, root, list(err["loc"]), _message(err)) for err in exc.errors()]
        raise ConfigError(issues) from None
    problems = cross_check_issues(cfg, catalog)
    if problems:
        raise ConfigError([_issue(file, root, list(path), msg) for path, msg in problems])
    return cfg


def _message(err: Any) -> str:
    message = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    if err.get("type") == "missing" or isinstance(value, dict | list) or value is None:
        return message
    return f"{message} (got {value!r:.60})"


def load_camera_config(path: str | Path, *, catalog: Catalog | None = None) -> CameraConfig:
    """Read and validate one camera YAML file. Raises ConfigError (`file:line: field: what is wrong`).
    Beyond `parse_camera_config`, the few-shot head files its rules name must load here."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(file, "", None, f"cannot read: {exc.strerror or exc}")]) from None
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(file, "", line, f"not valid YAML: {problem}")]) from None
    cfg = parse_camera_config(data, file=file, root=root, catalog=catalog)
    from edge_agent.zone_state import head_issues  # files only this box has: not part of the hub's check

    missing = head_issues(cfg.rules, catalog)
    if missing:
        raise ConfigError([_issue(file, root, path, msg) for path, msg in missing])
    return cfg
