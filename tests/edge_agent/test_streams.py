"""Dual streams at the packet level: the main stream's ring keeps whole GOPs back to its horizon,
frames decoded on demand are the ones shown at the times asked, the detect stream is sampled and
converted only where needed, and read-ahead keeps order and errors."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from edge_agent.prefetch import Prefetch
from edge_agent.streams import DetectStream, MainStreamFile, MainStreamRecorder, Packet, PacketRing, decode_at
from edge_agent.substream import make_substream

FPS = 10


def numbered_video(path: Path, frames: int = 40, size: tuple[int, int] = (128, 96), gop: int = 10) -> Path:
    """Frame i is a flat grey of level 10 + 6 i: its index can be read back from any decode."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS), options={"g": str(gop), "bf": "0", "crf": "10"})
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.codec_context.time_base = Fraction(1, FPS)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 10 + 6 * i, np.uint8), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


LEVELS: list[float] = []  # each frame's mean as decoded (YUV rounding moves it a little)


def index_of(image: np.ndarray) -> int:
    return int(np.argmin(np.abs(np.array(LEVELS) - float(image.mean()))))


@pytest.fixture(scope="module")
def main_video(tmp_path_factory) -> Path:
    path = numbered_video(tmp_path_factory.mktemp("v") / "main.mp4")
    with av.open(str(path)) as video:
        LEVELS[:] = [float(f.to_ndarray(format="bgr24").mean()) for f in video.decode(video=0)]
    return path


def test_ring_keeps_whole_gops_back_to_its_horizon() -> None:
    ring = PacketRing(keep_s=2.5)
    ring.push(Packet(0.0, b"p", keyframe=False))  # before any keyframe: undecodable, not kept
    assert len(ring) == 0
    for i in range(60):  # 10 fps, a keyframe every second
        ring.push(Packet(i / 10, b"x", keyframe=i % 10 == 0))
    _, packets = ring.since(-1.0)
    # newest 5.9 s, horizon 3.4 s: the GOP holding 3.4 (from 3.0) is the oldest kept
    assert packets[0].ts == pytest.approx(3.0) and packets[0].keyframe and packets[-1].ts == pytest.approx(5.9)
    _, span = ring.since(4.25)
    assert span[0].ts == pytest.approx(4.0) and span[0].keyframe  # from the keyframe before the time asked


def test_decode_at_gives_the_frame_shown_at_each_time(main_video: Path) -> None:
    main = MainStreamFile(main_video, keep_s=100, start_time=1000.0)
    main.advance_to(1000.0 + 3.95)
    info, packets = main.ring.since(1000.0 + 1.25)
    assert packets[0].ts == pytest.approx(1001.0)  # the keyframe before 1.25 s (gop 1 s)
    images = decode_at(info, packets, [1001.25, 1001.3, 1003.9, 1000.5])
    # the last frame at or before each time; before the span's first frame: its first frame
    assert [index_of(i) for i in images] == [12, 13, 39, 10]
    assert images[0].shape == (96, 128, 3)
    assert decode_at(info, [], [1001.0]) == []


def test_detect_stream_samples_and_feeds_the_main_ring(tmp_path: Path, main_video: Path) -> None:
    sub = make_substream(main_video, tmp_path / "sub.mp4", 64, 48, gop_s=1, crf=5)
    main = MainStreamFile(main_video, keep_s=100, start_time=50.0)
    stream = DetectStream("cam", sub, sample_fps=2, start_time=50.0, main=main)
    frames = list(stream)
    assert [f.ts - 50.0 for f in frames] == pytest.approx([0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
    assert [index_of(f.image) for f in frames] == [0, 5, 10, 15, 20, 25, 30, 35]
    assert frames[0].image.shape == (48, 64, 3)
    assert stream.stats.frames_decoded == 40 and stream.stats.frames_dropped == 32
    assert main.ring.newest_ts == pytest.approx(53.5)  # the main stream went as far as the detect stream


def test_main_stream_recorder_plays_a_file_at_real_speed(main_video: Path) -> None:
    recorder = MainStreamRecorder("cam", str(main_video), keep_s=100, start_time=10.0).start()
    time.sleep(1.2)
    newest = recorder.ring.newest_ts
    recorder.stop()
    assert newest is not None and 10.7 <= newest <= 11.8  # ~1.2 s of a 10 fps file, on its own clock
    assert recorder.stats.frames_decoded >= 8


def test_prefetch_keeps_order_and_raises_where_the_source_failed() -> None:
    def source():
        yield from range(5)
        raise ValueError("bad frame 5")

    it = Prefetch(source(), depth=2)
    assert [next(it) for _ in range(5)] == list(range(5))
    with pytest.raises(ValueError, match="bad frame 5"):
        next(it)
    assert next(it, None) is None


def test_a_dual_stream_cameras_snapshot_is_the_main_streams_frame(tmp_path: Path, main_video: Path) -> None:
    import cv2

    from edge_agent.config import parse_camera_config
    from edge_agent.pipeline import Pipeline
    from edge_agent.sinks import MemorySink
    from tests.edge_agent.edge_fakes import ScriptedDetector

    sub = make_substream(main_video, tmp_path / "sub.mp4", 64, 48, gop_s=1, crf=5)
    cfg = parse_camera_config({"id": "cam", "source": str(main_video), "detect_source": str(sub),
                               "timezone": "Asia/Shanghai", "detect_fps": 2})
    pipeline = Pipeline([cfg], ScriptedDetector(), MemorySink(), device_id="box", ground=None)
    main = MainStreamFile(main_video, keep_s=cfg.main_stream_keep_s(), start_time=0.0)
    pipeline.run_replays({"cam": DetectStream("cam", sub, sample_fps=2, main=main)})
    jpeg, ts = pipeline.snapshot("cam")
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert ts == pytest.approx(3.5) and image.shape == (96, 128, 3)  # full size, not the 64x48 detect frame
    assert index_of(image) == 35
