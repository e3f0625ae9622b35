"""ProblemUpdate + recent frames -> wire `ProblemEvent` + media bytes, handed to an `EventSink`.

Per event: `snapshot.jpg` (the frame the rule fired on, original pixels), `annotated.jpg` (zone, box,
the class's Chinese name, state and dwell; heads blurred when `blur_faces`), `crop.jpg` (the object; for
change rules the clear reference of the place on the left, the place now on the right), and for `opened` a
`clip.webm` (VP8, which browsers play inline; `clip.avi` MJPEG where OpenCV lacks VP8) from `pre_s`
before to `post_s` after. The clip's future half does not
exist when the rule fires, so an opened event waits in `pending` until its post-roll is in (or
the stream ends) and only then goes to the sink, complete and hashed. Events leave in the order
they were made, so a `cleared` never overtakes its own `opened`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from edge_agent.annotate import draw_box, draw_polygon, draw_time
from edge_agent.config import EvidenceConfig
from edge_agent.geometry import Box
from edge_agent.plates.evidence import ParkingEvidence
from edge_agent.types import EventSink, Frame, ProblemUpdate, Track
from edge_agent.zones import ZoneConfig
from protocol import __version__
from protocol.catalog import default_catalog
from protocol.label_names import label_zh
from protocol.manifest import sha256_hex
from protocol.messages import (
    GroundPoint,
    MediaKind,
    MediaRef,
    ModelInfo,
    NormBox,
    ProblemEvent,
    ProblemState,
)

log = logging.getLogger(__name__)

GroundFn = Callable[[Box, tuple[int, int]], GroundPoint | None]


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buf.tobytes()


@dataclass(frozen=True)
class ClipFormat:
    name: str
    content_type: str
    fourcc: str


# VP8/WebM first: a reviewer's browser plays it inline (~40 ms a 768x576 frame, clips are short and
# rare); MJPEG/AVI where this OpenCV build has no VP8 encoder: every player opens it.
CLIP_FORMATS = (ClipFormat("clip.webm", "video/webm", "VP80"), ClipFormat("clip.avi", "video/x-msvideo", "MJPG"))


def encode_clip(frames: Sequence[np.ndarray], fps: float, quality: int = 80) -> tuple[ClipFormat, bytes]:
    """The clip in the first format this OpenCV build can write; (format, b"") for no frames."""
    if not frames:
        return CLIP_FORMATS[-1], b""
    h, w = frames[0].shape[:2]
    for fmt in CLIP_FORMATS:
        data = _write_clip(frames, fps, quality, fmt, (w, h))
        if data:
            return fmt, data
    raise RuntimeError("OpenCV can write neither VP8/WebM nor MJPEG/AVI clips")


def _write_clip(frames: Sequence[np.ndarray], fps: float, quality: int, fmt: ClipFormat,
                size_wh: tuple[int, int]) -> bytes:
    fd, path = tempfile.mkstemp(suffix=Path(fmt.name).suffix)
    os.close(fd)
    try:
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fmt.fourcc), max(fps, 0.5), size_wh)
        if not writer.isOpened():
            return b""
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
        for image in frames:
            writer.write(image if image.shape[1::-1] == size_wh else cv2.resize(image, size_wh))
        writer.release()
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def crop_box(image: np.ndarray, xyxy: Box, margin: float) -> np.ndarray:
    h, w = image.shape[:2]
    x1, y1, x2, y2 = xyxy
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = int(max(0, x1 - mx)), int(max(0, y1 - my))
    right, bottom = int(min(w, x2 + mx + 1)), int(min(h, y2 + my + 1))
    if right - left < 2 or bottom - top < 2:
        return image
    return image[top:bottom, left:right]


def scale_box(xyxy: Box, frame_wh: tuple[int, int], image: np.ndarray) -> Box:
    """A frame-pixel box in the pixels of `image` (the same view at another size)."""
    kx, ky = image.shape[1] / frame_wh[0], image.shape[0] / frame_wh[1]
    return (xyxy[0] * kx, xyxy[1] * ky, xyxy[2] * kx, xyxy[3] * ky)


def before_after(before: np.ndarray, after: np.ndarray, gap_px: int = 6) -> np.ndarray:
    """`before` (scaled to `after`'s size) and `after` side by side with a white bar between:
    a change event's crop shows the clear reference on the left and the place now on the right."""
    before = cv2.resize(before, after.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    bar = np.full((after.shape[0], gap_px, 3), 255, np.uint8)
    return np.hstack([before, bar, after])


def blur_heads(image: np.ndarray, person_boxes: Sequence[Box], head_fraction: float = 0.22) -> None:
    """Blur the top part of each person box in place: a face detector misses small, turned or
    blurred faces, while the head is always at the top of a standing person's box."""
    h, w = image.shape[:2]
    for x1, y1, x2, y2 in person_boxes:
        left, top = max(0, int(x1)), max(0, int(y1))
        right, bottom = min(w, int(x2) + 1), min(h, int(y1 + (y2 - y1) * head_fraction) + 1)
        if right - left >= 2 and bottom - top >= 2:
            k = max(3, (right - left) // 2 * 2 + 1)
            head = image[top:bottom, left:right]
            image[top:bottom, left:right] = cv2.GaussianBlur(head, (k, k), 0)


def norm_box(xyxy: Box, frame_wh: tuple[int, int]) -> NormBox:
    w, h = frame_wh
    x1, y1, x2, y2 = (min(1.0, max(0.0, v)) for v in (xyxy[0] / w, xyxy[1] / h, xyxy[2] / w, xyxy[3] / h))
    return NormBox(x1=x1, y1=y1, x2=max(x1, x2), y2=max(y1, y2))


# The overlay is read by Chinese reviewers: the catalogue's Chinese class name, then these words.
STATE_ZH = {ProblemState.OPENED.value: "新发现", ProblemState.UPDATED.value: "仍在",
            ProblemState.CLEARED.value: "已离开"}


def duration_zh(seconds: float) -> str:
    """31 秒, 5 分 12 秒, 2 小时 3 分, 3 天 4 小时: the dwell as a reviewer reads it."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} 秒"
    if s < 3600:
        return f"{s // 60} 分 {s % 60} 秒"
    if s < 86400:
        return f"{s // 3600} 小时 {s % 3600 // 60} 分"
    return f"{s // 86400} 天 {s % 86400 // 3600} 小时"


def problem_label(class_id: str, state: str, dwell_s: float) -> str:
    """'机动车乱停放 新发现 停留 31 秒'; an id the catalogue lacks is shown as it is."""
    catalog = default_catalog()
    name = catalog.get(class_id).name_zh if class_id in catalog else class_id
    return f"{name} {STATE_ZH.get(state, state)} 停留 {duration_zh(dwell_s)}"


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class FrameRing:
    """The last `seconds` of frames, thinned to `fps`: the clip's pre-roll."""

    def __init__(self, seconds: float, fps: float) -> None:
        self.period = 1.0 / fps
        self.seconds = seconds
        self._frames: deque[Frame] = deque()

    def push(self, frame: Frame) -> bool:
        """Keep `frame` if it is at least one period after the last kept one; True if kept."""
        if self._frames and frame.ts - self._frames[-1].ts < self.period * 0.95:
            return False
        self._frames.append(frame)
        while self._frames and frame.ts - self._frames[0].ts > self.seconds + 1e-6:
            self._frames.popleft()
        return True

    def frames(self) -> list[Frame]:
        return list(self._frames)


@dataclass
class _Pending:
    event_id: str
    update: ProblemUpdate
    frame: Frame
    tracks: list[Track]
    clip: list[Frame] = field(default_factory=list)
    until: float = 0.0  # frame time at which the post-roll is complete
    wants_clip: bool = False


class EvidenceBuilder:
    """Turns one camera's ProblemUpdates into complete events for `sink`.

    Call `add_frame` for every sampled frame (it feeds the ring and the pending clips, and emits what
    is complete), `on_updates` with what the rule engine returned for that frame, and `flush` at the
    end of a stream.
    """

    def __init__(self, config: EvidenceConfig, *, camera_id: str, device_id: str, clip_fps: float,
                 sink: EventSink, zones: Sequence[ZoneConfig] = (), model: ModelInfo | None = None,
                 ground: GroundFn | None = None, agent_version: str = __version__,
                 timezone: str | None = None, plates: ParkingEvidence | None = None) -> None:
        """`timezone`: the camera's, for the frame time printed on the annotated still (default UTC).
        `plates`: the plate and timed stills of parking classes (None: no plate evidence)."""
        self.config = config
        self.timezone = ZoneInfo(timezone) if timezone else UTC
        self.camera_id = camera_id
        self.device_id = device_id
        self.clip_fps = clip_fps
        self.sink = sink
        self.zones = {z.id: z for z in zones}
        self.model = model
        self.ground = ground
        self.agent_version = agent_version[:32]
        self.plates = plates
        self.ring = FrameRing(config.pre_s, clip_fps)
        self.pending: deque[_Pending] = deque()
        self.emitted = 0

    def reconfigure(self, config: EvidenceConfig, *, clip_fps: float, zones: Sequence[ZoneConfig],
                    ground: GroundFn | None) -> None:
        """A new camera config (a hub push) between frames; events already pending keep their clips.
        The pre-roll ring starts over only when its length or rate changed."""
        if (config.pre_s, clip_fps) != (self.config.pre_s, self.clip_fps):
            self.ring = FrameRing(config.pre_s, clip_fps)
        self.config, self.clip_fps, self.ground = config, clip_fps, ground
        self.zones = {z.id: z for z in zones}

    def add_frame(self, frame: Frame) -> None:
        if self.ring.push(frame):
            for p in self.pending:
                if p.wants_clip and frame.ts <= p.until + 1e-6 and frame.ts > p.clip[-1].ts:
                    p.clip.append(frame)
        self._emit_ready(frame.ts)

    def on_updates(self, updates: Sequence[ProblemUpdate], frame: Frame, tracks: Sequence[Track]) -> None:
        for update in updates:
            wants_clip = self.config.clip and update.state == ProblemState.OPENED.value
            pending = _Pending(uuid.uuid4().hex, update, frame, list(tracks), wants_clip=wants_clip)
            if wants_clip:
                pending.clip = [f for f in self.ring.frames() if f.ts < frame.ts] + [frame]
                pending.until = frame.ts + self.config.post_s
            self.pending.append(pending)
        self._emit_ready(frame.ts)

    def flush(self) -> None:
        """End of stream: send what is pending with the post-roll it got."""
        while self.pending:
            self._emit(self.pending.popleft())

    def _emit_ready(self, now: float) -> None:
        while self.pending and (not self.pending[0].wants_clip or now >= self.pending[0].until - 1e-6):
            self._emit(self.pending.popleft())

    def _emit(self, p: _Pending) -> None:
        event, media = self.build(p)
        self.sink.submit(event, media)
        self.emitted += 1

    # Building ----------------------------------------------------------------------------------

    def build(self, p: _Pending) -> tuple[ProblemEvent, dict[str, bytes]]:
        u, image = p.update, p.frame.image
        q = self.config.jpeg_quality
        files: list[tuple[str, MediaKind, str, bytes]] = [
            ("snapshot.jpg", MediaKind.SNAPSHOT, "image/jpeg", encode_jpeg(image, q)),
            ("annotated.jpg", MediaKind.ANNOTATED, "image/jpeg", encode_jpeg(self.annotate(p), q)),
        ]
        if u.state != ProblemState.CLEARED.value:
            crop = crop_box(image, u.xyxy, self.config.crop_margin)
            if u.reference_image is not None:
                crop = before_after(crop_box(u.reference_image, scale_box(u.xyxy, p.frame.resolution_wh,
                                                                          u.reference_image),
                                             self.config.crop_margin), crop)
            files.append(("crop.jpg", MediaKind.CROP, "image/jpeg", encode_jpeg(crop, q)))
        if p.wants_clip and p.clip:
            fmt, clip = encode_clip([f.image for f in p.clip], self.clip_fps, quality=min(q, 80))
            files.append((fmt.name, MediaKind.CLIP, fmt.content_type, clip))
        plate = None
        if self.plates is not None and u.class_id in self.plates.classes:
            plate = self.plates.info(u)
            if u.state != ProblemState.CLEARED.value:
                files += [(name, kind, "image/jpeg", encode_jpeg(still, q))
                          for name, kind, still in self.plates.stills(u, p.frame)]
        refs = [MediaRef(name=n, kind=k, content_type=ct, size=len(b), sha256=sha256_hex(b))  # type: ignore[arg-type]
                for n, k, ct, b in files]
        wh = p.frame.resolution_wh
        event = ProblemEvent(
            event_id=p.event_id, problem_id=u.problem_id, device_id=self.device_id, camera_id=self.camera_id,
            class_id=u.class_id, state=ProblemState(u.state), zone=u.zone, box=norm_box(u.xyxy, wh),
            score=min(1.0, max(0.0, u.score)), labels=list(u.labels)[:32], first_seen=utc(u.first_seen),
            observed_at=utc(u.observed_at), dwell_s=max(0.0, u.dwell_s), object_count=u.object_count,
            ground=self.ground(u.xyxy, wh) if self.ground else None, model=self.model,
            agent_version=self.agent_version, media=refs, plate=plate)
        return event, {n: b for n, _, _, b in files}

    def annotate(self, p: _Pending) -> np.ndarray:
        """A drawn-on copy: zone outline, the problem box with class and dwell, the tracks involved."""
        u, out = p.update, p.frame.image.copy()
        w, h = p.frame.resolution_wh
        if self.config.blur_faces:
            blur_heads(out, [t.xyxy for t in p.tracks if t.label == "person"])
        zone = self.zones.get(u.zone or "")
        if zone is not None and zone.polygon:
            draw_polygon(out, np.array(zone.polygon) * [w, h], zone.id)
        involved = set(u.track_ids)
        for t in p.tracks:
            if t.track_id in involved and t.xyxy != u.xyxy:
                draw_box(out, t.xyxy, f"{label_zh(t.label)} #{t.track_id}", (255, 200, 0))
        color = (0, 200, 0) if u.state == ProblemState.CLEARED.value else (0, 0, 255)
        draw_box(out, u.xyxy, problem_label(u.class_id, u.state, u.dwell_s), color)
        draw_time(out, datetime.fromtimestamp(p.frame.ts, self.timezone))
        return out
