"""The edge pipeline: per camera ingest -> motion gate -> (batched) detector -> tracker -> rules ->
evidence -> EventSink.

`Pipeline.process(batch)` is one tick over frames of several cameras: each frame passes its camera's
gate, the frames that need the detector go to it in one call (the model takes a batch), then each
camera's tracker, rule engine and evidence builder run. `run_live` feeds it from threaded readers
(newest frame only, so latency cannot grow); `replay` feeds it a file deterministically.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edge_agent.change.confirm import RegionConfirmer
from edge_agent.change.watch import ChangeWatch, change_rules
from edge_agent.config import CameraConfig
from edge_agent.evidence import EvidenceBuilder, EvidenceWorker, GroundFn
from edge_agent.ground import ground_for
from edge_agent.ingest import FileReplay, LiveReader, SourceKind, shown_source, source_kind
from edge_agent.metrics import CameraMetrics, EdgeMetrics
from edge_agent.motion import GateReason, MotionGate
from edge_agent.plates.evidence import ParkingEvidence
from edge_agent.plates.ocr import ModelsMissing
from edge_agent.plates.reader import PlateReader
from edge_agent.plates.watch import PlateWatcher
from edge_agent.prefetch import Prefetch
from edge_agent.rules.engine import RuleEngine
from edge_agent.streams import DetectStream, MainStreamFile, MainStreamRecorder, decode_at
from edge_agent.track import ByteTracker, TrackerConfig
from edge_agent.types import Detections, EventSink, Frame, ProblemUpdate, Track, TrackState
from edge_agent.zone_state import HeadConfirmer, StateHeads, StateWatch, state_rules
from protocol.catalog import Catalog, InactiveClass, default_catalog
from protocol.messages import ModelInfo, NormBox

log = logging.getLogger(__name__)


class DetectorLike(Protocol):
    """What the pipeline needs from `edge_agent.detect.Detector`."""

    max_batch: int

    @property
    def labels(self) -> tuple[str, ...]: ...

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]: ...


def operating_thresholds(detector: DetectorLike) -> np.ndarray | None:
    """The detector's per-class operating scores (`Detector.operating`; it may also return weaker boxes, see
    `detection_floor`); None for a detector without them, whose every box counts."""
    return getattr(detector, "operating", None)


def detection_floor(cameras: Sequence[CameraConfig]) -> float:
    """The lowest score the cameras' trackers use (their second stage): what the shared detector keeps."""
    return min((c.tracker.low_score for c in cameras), default=TrackerConfig().low_score)


def default_device_id() -> str:
    name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in socket.gethostname())
    return (name or "edge")[:64]


def model_info(detector: object) -> ModelInfo | None:
    manifest = getattr(detector, "manifest", None)
    sha = getattr(manifest, "sha256", None)
    if manifest is None or not sha:
        return None
    return ModelInfo(name=str(manifest.name)[:128], sha256=sha)


@dataclass
class CameraRuntime:
    """One camera's stages and state inside the pipeline."""

    config: CameraConfig
    gate: MotionGate
    tracker: ByteTracker
    evidence: EvidenceBuilder
    metrics: CameraMetrics
    catalog: Catalog
    engine: RuleEngine | None = None  # built on the first frame: zones need the frame size
    plates: PlateWatcher | None = None  # reads the plates of vehicles stopped in parking-rule zones
    plate_classes: frozenset[str] = frozenset()  # the catalog's classes that read plates
    change: ChangeWatch | None = None  # the `source: change` rules, if any
    states: StateWatch | None = None  # the `source: state` rules, if any
    tracks: list[Track] = field(default_factory=list)
    last_sample_ts: float | None = None
    last_detect_slot: float | None = None
    updates: list[ProblemUpdate] = field(default_factory=list)  # every update so far (summaries, tests)
    latest: Frame | None = None  # the newest sampled frame (snapshots for the hub's zone editor)
    keyframes_only: threading.Event | None = None  # the detect stream's switch, when it has one
    still_since: float | None = None  # since when no relevant motion (None: motion at the last check)

    def due(self, ts: float) -> bool:
        """Whether a frame at `ts` is one the pipeline samples (sample_fps), frames between are dropped."""
        return _period_passed(self.last_sample_ts, ts, self.config.sample_fps())

    def observe_plates(self, frame: Frame) -> None:
        """Plate reads in the zones the camera's parking rules watch now (a managed config may change them)."""
        if self.plates is not None:
            engine = self.engine_for(frame)
            zones = [engine.zones[z] for z in plate_zones(self.config, self.plate_classes) if z in engine.zones]
            self.plates.observe(frame, self.tracks, zones)

    def note_stillness(self, reason: GateReason, ts: float) -> None:
        """Ask the detect stream for keyframes only once the camera has been still long enough
        (`motion.keyframes_when_still_s`), and for every frame again on motion."""
        after = self.config.motion.keyframes_when_still_s
        if self.keyframes_only is None or after is None:
            return
        moved = reason in (GateReason.START, GateReason.MOTION, GateReason.DISABLED)
        self.still_since = None if moved else (ts if self.still_since is None else self.still_since)
        standing = all(t.stationary_since is not None for t in self.tracks if t.state != TrackState.REMOVED)
        if self.still_since is not None and ts - self.still_since >= after and standing:
            self.keyframes_only.set()
        else:
            self.keyframes_only.clear()

    def detect_slot(self, ts: float) -> bool:
        """Whether a sampled frame may be detected (detect_fps <= sample_fps)."""
        return _period_passed(self.last_detect_slot, ts, self.config.detect_fps)

    def engine_for(self, frame: Frame) -> RuleEngine:
        if self.engine is None or self.engine.frame_wh != frame.resolution_wh:
            self.engine = self.new_engine(frame.resolution_wh)
        return self.engine

    def new_engine(self, frame_wh: tuple[int, int]) -> RuleEngine:
        """This camera's zones and rules at a frame size (zones are in pixels)."""
        cfg = self.config
        return RuleEngine(self.catalog, cfg.zones, cfg.rules, cfg.id, frame_wh, timezone=cfg.timezone)


def _period_passed(last: float | None, ts: float, fps: float) -> bool:
    """Whether `ts` is at least one period of `fps` after `last` (5% early still counts); True without `last`."""
    period = 1.0 / fps
    return last is None or ts - last >= period * 0.95


class Pipeline:
    """All cameras of one agent sharing one detector."""

    def __init__(self, cameras: Sequence[CameraConfig], detector: DetectorLike, sink: EventSink, *,
                 device_id: str | None = None, metrics: EdgeMetrics | None = None,
                 catalog: Catalog | None = None,
                 ground: Callable[[CameraConfig], GroundFn | None] | None = ground_for,
                 confirmers: Mapping[str, RegionConfirmer] | None = None,
                 plate_reader: PlateReader | None = None, heads: StateHeads | None = None,
                 evidence_threads: int | None = None) -> None:
        """`ground` builds each camera's box -> GroundPoint mapping (default: from its `calibration`;
        None: events carry no ground position). `confirmers`: classifiers change rules may ask
        (`params.confirm.by`), by name. `plate_reader`: shared by the cameras that read plates
        (default: loaded when one does). `heads`: the state heads of `source: state` rules and of
        `params.confirm.model` (default: loaded from their files when a rule names one).
        `evidence_threads`: threads building evidence (default: one per core; a camera's events stay
        on one of them, in order)."""
        ids = [c.id for c in cameras]
        if len(set(ids)) != len(ids):
            raise ValueError(f"camera ids must be unique, got {ids}")
        self.detector = detector
        self.sink = sink
        self.device_id = device_id or default_device_id()
        self.metrics = metrics or EdgeMetrics()
        self.catalog = catalog or default_catalog()
        self._ground = ground
        self._confirmers = dict(confirmers or {})
        self._heads = heads or StateHeads()
        self._tick = threading.Lock()  # a config swap (hub push, another thread) happens between ticks
        model = model_info(detector)
        # decoding the main stream, JPEGs and clips off the hot path; events of many cameras at once
        self.evidence_worker = EvidenceWorker(threads=evidence_threads or os.cpu_count() or 1)
        sink_lock = threading.Lock()  # the evidence threads hand events to one sink
        self._plate_reader = plate_reader
        plate_classes = frozenset(c.id for c in self.catalog if c.plates)
        self.cameras: dict[str, CameraRuntime] = {}
        for cfg in cameras:
            cam_metrics = self.metrics.camera(cfg.id)
            zones = plate_zones(cfg, plate_classes)
            watcher = self._plate_watcher(cfg) if zones else None
            parking = ParkingEvidence(plate_classes, watcher, camera_id=cfg.id, place=cfg.place,
                                      timezone=cfg.timezone)
            evidence = EvidenceBuilder(cfg.evidence, camera_id=cfg.id, device_id=self.device_id,
                                       clip_fps=cfg.clip_fps(), sink=_CountingSink(sink, cam_metrics, sink_lock),
                                       zones=cfg.zones, model=model, ground=ground(cfg) if ground else None,
                                       timezone=cfg.timezone, plates=parking, worker=self.evidence_worker)
            if watcher is not None:  # plates read on the main stream's frames, when the camera has one
                watcher.offload, watcher.scale = evidence.at_main, evidence.main_scale
            self.cameras[cfg.id] = CameraRuntime(cfg, MotionGate(cfg.motion, watched_regions(cfg)),
                                                 self._tracker(cfg), evidence,
                                                 cam_metrics, self.catalog, plates=watcher,
                                                 plate_classes=plate_classes)
            self.cameras[cfg.id].change = self._change_watch(cfg)
            self.cameras[cfg.id].states = self._state_watch(cfg)
        self.log_startup()

    def _tracker(self, cfg: CameraConfig) -> ByteTracker:
        return ByteTracker(cfg.tracker, operating_thresholds(self.detector))

    def _plate_watcher(self, cfg: CameraConfig) -> PlateWatcher | None:
        """A plate watcher for a camera with parking rules, sharing one reader; None when plates are
        off or the OCR models are not installed (events then say the plate was not read)."""
        if not cfg.plates.enabled:
            return None
        if self._plate_reader is None:
            try:
                self._plate_reader = PlateReader(threads=cfg.plates.threads)
            except ModelsMissing as exc:
                log.warning("camera %s: plates are not read: %s", cfg.id, exc)
                return None
        return PlateWatcher(cfg.plates, self._plate_reader)

    def _change_watch(self, cfg: CameraConfig) -> ChangeWatch | None:
        """The camera's `source: change` rules, if it has any."""
        if not change_rules(cfg.rules):
            return None
        for rule in change_rules(cfg.rules):  # a state head named as confirmer: loaded once per agent
            confirm = rule.change_params(self.catalog).confirm
            if confirm is not None and confirm.model is not None and confirm.name not in self._confirmers:
                self._confirmers[confirm.name] = HeadConfirmer(self._heads.get(confirm.model), confirm.label)
        return ChangeWatch(cfg.change, cfg.rules, cfg.zones, cfg.id, self.catalog, timezone=cfg.timezone,
                           confirmers=self._confirmers)

    def _state_watch(self, cfg: CameraConfig) -> StateWatch | None:
        """The camera's `source: state` rules, if it has any."""
        if not state_rules(cfg.rules):
            return None
        return StateWatch(cfg.rules, cfg.zones, cfg.id, self.catalog, self._heads, timezone=cfg.timezone)

    def retake_reference(self, camera_id: str, zone: str | None, box: NormBox | None, as_of: float) -> None:
        """The hub verified a change case of this place clear: its change reference is re-taken at the next
        analysis (edge_agent.change.retake_push). LookupError when the camera has no such change rule."""
        with self._tick:
            rt = self.cameras.get(camera_id)
            if rt is None or rt.change is None:
                raise LookupError(f"camera {camera_id} has no change rules on this device")
            rt.change.retake(zone, box, as_of)

    def change_cameras(self) -> list[str]:
        return [cid for cid, rt in self.cameras.items() if rt.change is not None]

    # Start-up report -----------------------------------------------------------------------------

    def log_startup(self) -> None:
        labels = self.detector.labels
        active, inactive = self.catalog.active_for(labels)
        log.info("model %s: %d labels; %d problem classes active: %s", getattr(
            getattr(self.detector, "manifest", None), "name", "?"), len(labels), len(active),
            ", ".join(c.id for c in active))
        log.info("%d problem classes inactive (the model lacks their labels): %s", len(inactive),
                 "; ".join(_describe_inactive(i) for i in inactive))
        for rt in self.cameras.values():
            cfg = rt.config
            dead = dict(rt.new_engine((1000, 1000)).inactive_rules(labels))
            log.info("%s", camera_summary(cfg, dead))
            for rule_id, missing in dead.items():
                log.warning("camera %s: rule %s can never fire: the model has none of %s", cfg.id, rule_id,
                            list(missing))

    # A new config while running --------------------------------------------------------------

    def reconfigure(self, cfg: CameraConfig) -> None:
        """Swap one camera's config between two ticks, its stream untouched (a hub push).

        The gate and the rule engine are rebuilt (zones and rules are their whole state; problems open
        under the old zones are not cleared on the hub by this camera, they age out there); the tracker
        keeps its tracks unless its own settings changed. `source` and `model` are read at start only:
        the caller refuses changes to them."""
        with self._tick:
            rt = self.cameras[cfg.id]
            old, rt.config = rt.config, cfg
            rt.gate = MotionGate(cfg.motion, watched_regions(cfg))
            if cfg.tracker != old.tracker:
                rt.tracker, rt.tracks = self._tracker(cfg), []
            rt.engine = None
            if (cfg.change, change_rules(cfg.rules), cfg.zones) != (old.change, change_rules(old.rules), old.zones):
                rt.change = self._change_watch(cfg)  # learns the reference anew
            if (state_rules(cfg.rules), cfg.zones) != (state_rules(old.rules), old.zones):
                rt.states = self._state_watch(cfg)
            rt.evidence.reconfigure(cfg.evidence, clip_fps=cfg.clip_fps(), zones=cfg.zones,
                                    ground=self._ground(cfg) if self._ground else None)
        log.info("%s", camera_summary(cfg, {}))

    def snapshot(self, camera_id: str, quality: int = 85) -> tuple[bytes, float]:
        """The camera's newest sampled frame as a JPEG and its time; LookupError saying why there is none."""
        import cv2

        rt = self.cameras.get(camera_id)
        if rt is None:
            raise LookupError(f"camera {camera_id} is not on this device")
        frame = rt.latest
        if frame is None:
            raise LookupError(f"camera {camera_id} has delivered no frame yet")
        image = frame.image
        if rt.evidence.main is not None:  # the zone editor wants the main stream's pixels
            info, packets = rt.evidence.main.since(frame.ts)
            full = decode_at(info, packets, [frame.ts]) if info else []
            image = full[0] if full else image
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise LookupError(f"camera {camera_id}: the frame could not be encoded as JPEG")
        return buf.tobytes(), frame.ts

    # A new model while running -------------------------------------------------------------------

    def swap_detector(self, detector: DetectorLike) -> None:
        """Run `detector` from the next tick on (a model rollout; the caller loaded and warmed it, so no
        frame waits). Tracks are kept when the new labels extend the old ones (their class ids keep
        their meaning, and open problems go on); otherwise tracking and the rules start over. Events
        report the new model from now on."""
        model = model_info(detector)
        with self._tick:
            keeps_ids = tuple(detector.labels[:len(self.detector.labels)]) == tuple(self.detector.labels)
            self.detector = detector
            for rt in self.cameras.values():
                rt.evidence.model = model
                rt.tracker.operating = operating_thresholds(detector)
                if not keeps_ids:
                    rt.tracker, rt.tracks, rt.engine = self._tracker(rt.config), [], None
        self.log_startup()

    # One tick ------------------------------------------------------------------------------------

    def process(self, frames: Sequence[Frame]) -> list[ProblemUpdate]:
        """Run one frame per camera (at most) through every stage; returns the rule updates."""
        with self._tick:
            return self._process(frames)

    def _process(self, frames: Sequence[Frame]) -> list[ProblemUpdate]:
        work = self._gate(frames)
        return self._finish(work, self._detect([(rt, f) for rt, f, d in work if d]))

    def _gate(self, frames: Sequence[Frame]) -> list[_Work]:
        """A tick's first stage: each frame into its camera's evidence ring and through its motion gate."""
        work: list[_Work] = []
        for frame in frames:
            rt = self.cameras[frame.camera_id]
            rt.last_sample_ts = frame.ts
            rt.metrics.frames_sampled += 1
            rt.metrics.last_frame_ts = frame.ts
            rt.latest = frame
            rt.evidence.add_frame(frame)
            detect = False
            if rt.detect_slot(frame.ts):
                rt.last_detect_slot = frame.ts
                decision = rt.gate.decide(frame.image, frame.ts, rt.tracks)
                rt.note_stillness(decision.reason, frame.ts)
                detect = decision.detect
                if decision.reason == GateReason.SKIP:
                    rt.metrics.gate_skipped += 1
            work.append((rt, frame, detect))
        return work

    def _finish(self, work: list[_Work], results: list[Detections]) -> list[ProblemUpdate]:
        """A tick's last stage: the detections (in the order of the frames to detect) through each
        camera's tracker, plates, rules and evidence."""
        found = {id(f): dets for (_, f), dets in zip([(rt, f) for rt, f, d in work if d], results, strict=True)}
        updates: list[ProblemUpdate] = []
        for rt, frame, detect in work:
            if detect:
                rt.tracks = rt.tracker.update(found[id(frame)], frame.ts)
                rt.metrics.detect_frames += 1
            else:
                rt.tracks = rt.tracker.tracks()
            rt.observe_plates(frame)
            new = rt.engine_for(frame).update(rt.tracks, frame.ts)
            if rt.change is not None:
                new += rt.change.update(frame, rt.tracks)
                rt.metrics.count_change(*rt.change.pop_counts())
            if rt.states is not None:
                new += rt.states.update(frame)
            if new:
                rt.evidence.on_updates(new, frame, rt.tracks)
                rt.updates.extend(new)
                updates.extend(new)
            rt.metrics.pending_events = len(rt.evidence.pending)
        return updates

    def _detect(self, items: list[tuple[CameraRuntime, Frame]]) -> list[Detections]:
        if not items:
            return []
        started = time.perf_counter()
        results = self.detector.detect([f.image for _, f in items])
        per_frame = (time.perf_counter() - started) * 1000 / len(items)
        for rt, _ in items:
            rt.metrics.record_inference(per_frame)
        return results

    def flush(self) -> None:
        """End of input: send events still waiting for their post-roll; returns once they are sent."""
        for rt in self.cameras.values():
            rt.evidence.flush()
            rt.metrics.pending_events = 0

    # Drivers -------------------------------------------------------------------------------------

    def run_live(self, stop: threading.Event, *, poll_s: float = 0.01) -> None:
        """Read every camera on its own thread until `stop` is set (or every file source ends).

        A camera with a `detect_source` is read from it; its main stream (`source`) is only demuxed,
        on a thread of its own, for the evidence."""
        readers = {cid: reader_for(rt.config) for cid, rt in self.cameras.items()}
        recorders: list[MainStreamRecorder] = []
        for cid, rt in self.cameras.items():
            cfg = rt.config
            if cfg.detect_source is not None:
                recorder = MainStreamRecorder(cid, cfg.source, keep_s=cfg.main_stream_keep_s(),
                                              start_time=readers[cid].start_time, loop_file=cfg.loop,
                                              rtsp_transport=cfg.rtsp_transport)
                rt.evidence.main = recorder.ring
                recorders.append(recorder)
        for recorder in recorders:
            recorder.start()
        for cid, reader in readers.items():
            self.cameras[cid].metrics.ingest = reader.stats
            reader.start()
        try:
            while not stop.is_set():
                batch = []
                for cid, reader in readers.items():
                    frame = reader.read(timeout=0)
                    if frame is not None and self.cameras[cid].due(frame.ts):
                        batch.append(frame)
                if batch:
                    self.process(batch)
                elif all(r.finished for r in readers.values()):
                    break
                else:
                    stop.wait(poll_s)
        finally:
            for reader in readers.values():
                reader.stop()
            self.flush()
            for recorder in recorders:
                recorder.stop()

    def run_replays(self, sources: Mapping[str, FileReplay | DetectStream],
                    on_frame: Callable[[Frame], None] | None = None) -> None:
        """Replay files deterministically, interleaved by timestamp, as fast as the detector goes.

        Each source decodes on its own thread a few frames ahead (the decoders release the GIL), so
        decoding uses the cores the detector leaves. A `DetectStream` with a main stream gives its
        camera's evidence the main stream's frames."""
        iterators = {cid: Prefetch(src, name=f"decode-{cid}") for cid, src in sources.items()}
        for cid, src in sources.items():
            self.cameras[cid].metrics.ingest = src.stats
            self.cameras[cid].keyframes_only = getattr(src, "keyframes_only", None)
            main = getattr(src, "main", None)
            if main is not None:
                self.cameras[cid].evidence.main = main.ring
        try:
            self._interleave(iterators, on_frame)
        finally:
            for it in iterators.values():
                it.close()
        self.flush()

    def _interleave(self, iterators: Mapping[str, Prefetch[Frame]],
                    on_frame: Callable[[Frame], None] | None) -> None:
        heads: dict[str, Frame] = {}
        for cid, it in iterators.items():
            head = next(it, None)
            if head is not None:
                heads[cid] = head
        if len(heads) >= OVERLAP_FROM_CAMERAS:
            self._interleave_overlapped(iterators, heads, on_frame)
            return
        while heads:
            # One tick takes every camera's next frame: identical clocks batch together.
            batch = list(heads.values())
            self.process(batch)
            for frame in batch:
                if on_frame:
                    on_frame(frame)
                nxt = next(iterators[frame.camera_id], None)
                if nxt is None:
                    del heads[frame.camera_id]
                else:
                    heads[frame.camera_id] = nxt


    def _interleave_overlapped(self, iterators: Mapping[str, Prefetch[Frame]], heads: dict[str, Frame],
                               on_frame: Callable[[Frame], None] | None) -> None:
        """The cameras in two halves whose ticks alternate: while the detector works on one half's
        frames, this thread tracks, rules and gates the other's, so the detector's sessions never wait
        on the Python stages (or those on the detector). Each camera's frames still go through every
        stage one after the other, in order."""
        groups = [list(heads)[0::2], list(heads)[1::2]]
        in_flight: _InFlight | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="detect-ahead") as ahead:
            while heads or in_flight is not None:
                for group in groups:
                    batch = [heads.pop(c) for c in group if c in heads]  # back in `heads` once finished
                    launched = None
                    if batch:
                        with self._tick:
                            work = self._gate(batch)
                        to_detect = [(rt, f) for rt, f, d in work if d]
                        launched = _InFlight(batch, work, ahead.submit(self._detect, to_detect))
                    if in_flight is not None:
                        self._land(in_flight, iterators, heads, on_frame)
                    in_flight = launched

    def _land(self, done: _InFlight, iterators: Mapping[str, Prefetch[Frame]], heads: dict[str, Frame],
              on_frame: Callable[[Frame], None] | None) -> None:
        results = done.detections.result()
        with self._tick:
            self._finish(done.work, results)
        for frame in done.batch:
            if on_frame:
                on_frame(frame)
            nxt = next(iterators[frame.camera_id], None)
            if nxt is not None:
                heads[frame.camera_id] = nxt


# Replays of this many cameras or more alternate two halves (`_interleave_overlapped`); with fewer, a
# half's frames would not fill the detector's sessions and the overlap would cost more than it saves.
OVERLAP_FROM_CAMERAS = 4
_Work = tuple[CameraRuntime, Frame, bool]  # a camera, its frame, whether the detector runs on it


@dataclass
class _InFlight:
    """A half's tick between its gate and its finish: the detector works on its frames."""

    batch: list[Frame]
    work: list[_Work]
    detections: Future[list[Detections]]


def reader_for(cfg: CameraConfig) -> LiveReader:
    """The threaded reader of one camera's detect stream (`detect_source`, else `source`), with its
    live-source knobs."""
    detect = cfg.source if cfg.detect_source is None else cfg.detect_source
    return LiveReader(cfg.id, detect, start_time=cfg.start_epoch(), loop_file=cfg.loop, stall_s=cfg.stall_s,
                      max_frame_age_s=cfg.max_frame_age_s, rtsp_transport=cfg.rtsp_transport)


def camera_summary(cfg: CameraConfig, inactive_rules: dict[str, tuple[str, ...]]) -> str:
    """One line: source, rates, zones, and each rule with its class, marked inactive when the model
    cannot drive it."""
    kind = source_kind(cfg.source)
    shown = shown_source(cfg.source)
    if cfg.loop:
        shown += " (looping)"
    if cfg.detect_source is not None:
        shown += f", detecting on {shown_source(cfg.detect_source)}"
    zones = ", ".join(f"{z.id}({'line' if z.is_line else 'polygon'})" for z in cfg.zones) or "none"
    rules = []
    for r in cfg.rules:
        state = "" if r.enabled else " disabled"
        if r.source != "detector":
            state += f" by {r.source}"
        if r.rule_id in inactive_rules:
            state += " INACTIVE: model lacks " + "/".join(inactive_rules[r.rule_id])
        rules.append(f"{r.rule_id}[{r.class_id}{state}]")
    active = sorted({r.class_id for r in cfg.rules if r.enabled and r.rule_id not in inactive_rules})
    return (f"camera {cfg.id}: {kind.value} {shown}, detect {cfg.detect_fps:g} fps, motion gating "
            f"{'on' if cfg.motion.enabled else 'off'}; zones: {zones}; rules: {', '.join(rules) or 'none'}; "
            f"active classes: {', '.join(active) or 'none'}")


def plate_zones(cfg: CameraConfig, plate_classes: frozenset[str]) -> tuple[str, ...]:
    """Zones watched by the camera's enabled rules of classes that read plates (parking)."""
    return tuple(dict.fromkeys(z for r in cfg.rules if r.enabled and r.class_id in plate_classes for z in r.zones))


def watched_regions(cfg: CameraConfig) -> list[tuple[float, float, float, float]] | None:
    """Normalised bounding boxes of the zones enabled rules watch; None (whole frame) without rules."""
    used = {z for r in cfg.rules if r.enabled for z in r.zones}
    out = []
    for zone in cfg.zones:
        points = zone.polygon or zone.line
        if zone.id in used and points:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            out.append((min(xs), min(ys), max(xs), max(ys)))
    return out or None


class _CountingSink:
    def __init__(self, sink: EventSink, metrics: CameraMetrics, lock: threading.Lock) -> None:
        self.sink, self.metrics, self.lock = sink, metrics, lock

    def submit(self, event: Any, media: Any) -> None:
        with self.lock:
            self.sink.submit(event, media)
            self.metrics.events += 1


def _describe_inactive(item: InactiveClass) -> str:
    return f"{item.problem_class.id} (needs {'/'.join(item.missing_labels)})"


@dataclass
class ReplayResult:
    camera: CameraConfig
    updates: list[ProblemUpdate]
    frames: int
    detect_frames: int
    gate_skipped: int
    wall_s: float
    video_s: float


def replay(config: CameraConfig, video: str, detector: DetectorLike, sink: EventSink, *,
           device_id: str | None = None, on_frame: Callable[[Frame], None] | None = None,
           catalog: Catalog | None = None) -> ReplayResult:
    """Replay one video file through one camera's pipeline, deterministically and as fast as possible.

    Frame times are `config.start_time` (default: the current second) + the position in the file.
    With a `detect_source` file, `video` is the main stream: detection runs on the detect source and
    the evidence shows `video`'s frames.
    """
    start = config.start_epoch()
    if start is None:
        start = float(int(time.time()))
    source: FileReplay | DetectStream
    if config.detect_source is not None and source_kind(config.detect_source) == SourceKind.FILE:
        # `video` is the main stream; detection runs on the recorded sub-stream beside it
        main = MainStreamFile(video, keep_s=config.main_stream_keep_s(), start_time=start)
        source = DetectStream(config.id, str(config.detect_source), sample_fps=config.sample_fps(),
                              start_time=start, main=main)
    else:
        source = FileReplay(config.id, video, sample_fps=config.sample_fps(), start_time=start)
    pipeline = Pipeline([config], detector, sink, device_id=device_id, catalog=catalog)
    started = time.perf_counter()
    pipeline.run_replays({config.id: source}, on_frame)
    rt = pipeline.cameras[config.id]
    return ReplayResult(config, rt.updates, rt.metrics.frames_sampled, rt.metrics.detect_frames,
                        rt.metrics.gate_skipped, time.perf_counter() - started, source.duration_s)
