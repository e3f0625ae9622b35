"""ProblemUpdate + recent frames -> wire `ProblemEvent` + media bytes, handed to an `EventSink`.

Per event: `snapshot.jpg` (the frame the rule fired on, original pixels), `annotated.jpg` (zone, box,
the class's Chinese name, state and dwell; heads blurred when `blur_faces`), `crop.jpg` (the object; for
change rules the clear reference of the place on the left, the place now on the right), and for `opened` a
clip (H.264 MP4, see `edge_agent.clips`) from `pre_s` before to `post_s` after. The clip's future
half does not exist when the rule fires, so an opened event waits in `pending` until its post-roll
is in (or the stream ends) and only then goes to the sink, complete and hashed. Events leave in the
order they were made, so a `cleared` never overtakes its own `opened`.

Encoding (JPEGs, the clip) is the slow part; with an `EvidenceWorker` it runs on that worker's
thread, off the pipeline's hot path, still in order.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from edge_agent.annotate import draw_box, draw_polygon, draw_time
from edge_agent.clips import ClipFormat, encode_clip
from edge_agent.config import EvidenceConfig
from edge_agent.geometry import Box
from edge_agent.main_decode import MainDecoder
from edge_agent.plates.evidence import ParkingEvidence
from edge_agent.streams import Packet, PacketRing, StreamInfo
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


class EvidenceWorker:
    """Builds and sends events on `threads` threads. The jobs of one key (a camera) all run on one
    thread, in the order they were queued, so a camera's events leave in order and its main-stream
    decoder is only ever used from one thread; cameras are spread over the threads as they come.

    Each thread's queue is bounded: a worker that falls behind slows the pipeline down instead of
    holding unbounded frames. A job that fails is logged; `drain` re-raises the first failure, so a
    run's end (or a test) sees it and no event disappears unnoticed.
    """

    def __init__(self, max_queued: int = 64, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"evidence threads must be >= 1, got {threads}")
        self._queues: list[queue.Queue[Callable[[], None] | None]] = [queue.Queue(max_queued) for _ in range(threads)]
        self._lane_of: dict[str, int] = {}
        self._lanes_lock = threading.Lock()
        self._error: BaseException | None = None
        self.threads = [threading.Thread(target=self._run, args=(q,), name=f"evidence-{i}", daemon=True)
                        for i, q in enumerate(self._queues)]
        for thread in self.threads:
            thread.start()

    @property
    def thread(self) -> threading.Thread:
        """The first thread (the only one by default)."""
        return self.threads[0]

    def submit(self, job: Callable[[], None], key: str = "") -> None:
        """Queue `job` after the earlier jobs of `key`."""
        with self._lanes_lock:
            lane = self._lane_of.setdefault(key, len(self._lane_of) % len(self._queues))
        self._queues[lane].put(job)

    def drain(self) -> None:
        """Wait until every queued job has run; raise the first failure."""
        for q in self._queues:
            q.join()
        error, self._error = self._error, None
        if error is not None:
            raise RuntimeError(f"building or sending evidence failed: {error}") from error

    def close(self) -> None:
        for q in self._queues:
            q.put(None)
        for thread in self.threads:
            thread.join()

    def _run(self, jobs: queue.Queue[Callable[[], None] | None]) -> None:
        while (job := jobs.get()) is not None:
            try:
                job()
            except Exception as exc:  # keep going: later events are independent of this one
                log.exception("evidence: building or sending an event failed")
                self._error = self._error or exc
            finally:
                jobs.task_done()
        jobs.task_done()


@dataclass
class _Pending:
    event_id: str
    update: ProblemUpdate
    frame: Frame
    tracks: list[Track]
    clip: list[Frame] = field(default_factory=list)
    until: float = 0.0  # frame time at which the post-roll is complete
    wants_clip: bool = False

    def first_ts(self) -> float:
        """The earliest frame time this event shows (its clip's first frame, else its own)."""
        return self.clip[0].ts if self.wants_clip and self.clip else self.frame.ts


MainSpan = tuple[StreamInfo | None, list[Packet]]  # a main stream's packets from a keyframe on


class EvidenceBuilder:
    """Turns one camera's ProblemUpdates into complete events for `sink`.

    Call `add_frame` for every sampled frame (it feeds the ring and the pending clips, and emits what
    is complete), `on_updates` with what the rule engine returned for that frame, and `flush` at the
    end of a stream.
    """

    def __init__(self, config: EvidenceConfig, *, camera_id: str, device_id: str, clip_fps: float,
                 sink: EventSink, zones: Sequence[ZoneConfig] = (), model: ModelInfo | None = None,
                 ground: GroundFn | None = None, agent_version: str = __version__,
                 timezone: str | None = None, plates: ParkingEvidence | None = None,
                 worker: EvidenceWorker | None = None) -> None:
        """`timezone`: the camera's, for the frame time printed on the annotated still (default UTC).
        `plates`: the plate and timed stills of parking classes (None: no plate evidence).
        `worker`: encode and send on that worker's thread (None: on the caller's, before returning)."""
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
        self.main: PacketRing | None = None  # the camera's main stream, when it detects on a sub-stream
        self.decoder = MainDecoder()  # used on the worker's thread only (one thread per camera)
        self.worker = worker
        self.emitted = 0  # events handed to the sink

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
        """End of stream: send what is pending with the post-roll it got (and wait until it is sent)."""
        if self.pending:
            self._emit(list(self.pending))
            self.pending.clear()
        if self.worker is not None:
            self.worker.drain()

    def _emit_ready(self, now: float) -> None:
        ready = []
        while self.pending and (not self.pending[0].wants_clip or now >= self.pending[0].until - 1e-6):
            ready.append(self.pending.popleft())
        if ready:
            self._emit(ready)

    def _emit(self, group: list[_Pending]) -> None:
        """Send the events complete at one frame, in order. They share one main-stream decode (several
        problems often open on one frame, with the same clip), taken from the ring now and decoded
        on the worker."""
        main = self.main.since(min(p.first_ts() for p in group)) if self.main is not None else None
        if self.worker is None:
            self._send(group, main)
        else:
            self.worker.submit(lambda: self._send(group, main), key=self.camera_id)

    def at_main(self, frame: Frame, then: Callable[[Frame], None]) -> None:
        """`then(frame)` with the main stream's frame at `frame.ts` (a plate read, a still), on the worker
        after this camera's earlier jobs; with `frame` itself when the camera has no main stream or
        its packets do not decode."""
        if self.main is None:
            then(frame)
            return
        info, packets = self.main.since(frame.ts)

        def job() -> None:
            images = self.decoder.images_at(info, packets, [frame.ts])
            then(replace(frame, image=images[0]) if images else frame)

        if self.worker is None:
            job()
        else:
            self.worker.submit(job, key=self.camera_id)

    def main_scale(self, frame: Frame) -> float:
        """How many times wider the main stream's frames are than `frame` (1 without a main stream)."""
        info = self.main.info if self.main is not None else None
        return info.width / frame.image.shape[1] if info is not None and info.width else 1.0

    def _send(self, group: list[_Pending], main: MainSpan | None) -> None:
        clips: dict[tuple[float, ...], tuple[ClipFormat, bytes]] = {}  # one encode per clip span
        failure: Exception | None = None
        for p in self.at_full_resolution(group, main):
            try:
                event, media = self.build(p, clips)
                self.sink.submit(event, media)
                self.emitted += 1
            except Exception as exc:  # the group's other events are independent of this one
                log.exception("camera %s: building or sending event %s failed", self.camera_id, p.event_id)
                failure = failure or exc
        if failure is not None:
            raise failure

    # Building ----------------------------------------------------------------------------------

    def at_full_resolution(self, group: list[_Pending], main: MainSpan | None) -> list[_Pending]:
        """The events with the main stream's frames at the same times and their boxes scaled to them;
        as they are without a main stream, or when its packets do not decode (the detect stream's
        frames still show the event)."""
        if main is None:
            return group
        times = sorted({f.ts for p in group for f in (p.frame, *p.clip)})
        images = self.decoder.images_at(main[0], main[1], times)
        if not images:
            log.warning("camera %s: the main stream had no frames for events %s; evidence from the detect stream",
                        self.camera_id, ", ".join(p.event_id for p in group))
            return group
        at = dict(zip(times, images, strict=True))
        return [_scaled(p, at) for p in group]

    def build(self, p: _Pending, clips: dict[tuple[float, ...], tuple[ClipFormat, bytes]] | None = None
              ) -> tuple[ProblemEvent, dict[str, bytes]]:
        """The event and its media files. `clips`: clips already encoded for this span of frames (events
        opened on one frame share theirs), added to."""
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
            span = tuple(f.ts for f in p.clip)
            cached = clips.get(span) if clips is not None else None
            fmt, clip = cached or encode_clip([f.image for f in p.clip], self.clip_fps, quality=min(q, 80))
            if clips is not None:
                clips[span] = (fmt, clip)
            files.append((fmt.name, MediaKind.CLIP, fmt.content_type, clip))
        plate = None
        if self.plates is not None and u.class_id in self.plates.classes:
            plate = self.plates.info(u)
            if u.state != ProblemState.CLEARED.value:
                files += [(name, kind, "image/jpeg", encode_jpeg(still, q))
                          for name, kind, still in self.plates.stills(u, p.frame)]
        refs = [MediaRef(name=n, kind=k, content_type=ct, size=len(b), sha256=sha256_hex(b))
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


def _scaled(p: _Pending, at: dict[float, np.ndarray]) -> _Pending:
    """`p` showing the images `at` its frames' times (the same view at another size), boxes scaled."""
    image, wh = at[p.frame.ts], p.frame.resolution_wh
    return replace(p, frame=replace(p.frame, image=image),
                   update=replace(p.update, xyxy=scale_box(p.update.xyxy, wh, image)),
                   tracks=[replace(t, xyxy=scale_box(t.xyxy, wh, image)) for t in p.tracks],
                   clip=[replace(f, image=at[f.ts]) for f in p.clip])
