"""Keyframe-only decoding while a camera is still (`motion.keyframes_when_still_s`): the detect stream
drops to its keyframes once nothing has moved for a while, and motion seen on a keyframe still wakes
the detector."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from edge_agent.config import parse_camera_config
from edge_agent.motion import GateReason
from edge_agent.pipeline import Pipeline
from edge_agent.sinks import MemorySink
from edge_agent.streams import DetectStream
from tests.edge_agent.edge_fakes import ScriptedDetector

FPS, FRAMES, MOVING = 10, 120, range(63, 80)  # a block moves through from 6.3 s to 8.0 s


def still_then_moving(path: Path) -> Path:
    rng = np.random.default_rng(3)
    background = rng.integers(40, 200, (120, 160, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS), options={"g": str(FPS), "bf": "0", "crf": "18"})
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(FRAMES):
            image = background.copy()
            if i in MOVING:
                x = 10 + 7 * (i - MOVING.start)
                image[40:80, x:x + 30] = 255
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def replay(video: Path, keyframes_when_still_s: float | None) -> tuple[DetectStream, list[tuple[float, GateReason]]]:
    cfg = parse_camera_config({"id": "cam", "source": str(video), "timezone": "UTC", "detect_fps": 2,
                               "motion": {"keyframes_when_still_s": keyframes_when_still_s, "roi_margin": None}})
    pipeline = Pipeline([cfg], ScriptedDetector(), MemorySink(), device_id="box", ground=None)
    decisions: list[tuple[float, GateReason]] = []
    gate = pipeline.cameras["cam"].gate
    decide = gate.decide

    def noted(image, ts, tracks):  # what the gate decided, frame by frame
        decision = decide(image, ts, tracks)
        decisions.append((ts, decision.reason))
        return decision

    gate.decide = noted
    source = DetectStream("cam", video, sample_fps=2)
    pipeline.run_replays({"cam": source})
    return source, decisions


def test_a_still_camera_decodes_keyframes_only_and_motion_still_wakes_it(tmp_path: Path) -> None:
    video = still_then_moving(tmp_path / "still.mp4")
    full, _ = replay(video, None)
    assert full.stats.frames_decoded == FRAMES
    sparse, decisions = replay(video, 2.0)
    # Seconds of keyframes only (1 frame in 10). How many depends on how far the decoder's read-ahead ran
    # when the switch came (66-80 of 120 seen, by the threads' timing); 90 still needs 3 s of them.
    assert sparse.stats.frames_decoded <= FRAMES - 30
    moved = [ts for ts, reason in decisions if reason == GateReason.MOTION]
    # seen on the first keyframe with the block (7.0 s); later ones: its leaving, the background settling
    assert moved and MOVING.start / FPS <= moved[0] < MOVING.stop / FPS and min(moved) >= MOVING.start / FPS
