"""Ingest against real sources: a local HTTP MJPEG camera that dies and comes back, garbled frames,
latency under a slow consumer, and deterministic file replay (also of a damaged file)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.ingest import (
    FileReplay,
    LiveReader,
    ReconnectPolicy,
    SourceKind,
    SourceState,
    shown_source,
    source_kind,
    tcp_answer,
)
from edge_agent.metrics import CameraMetrics
from tests.rtsp_support import free_port, wait_for

SERVER = Path(__file__).with_name("mjpeg_server.py")


class Camera:
    """The MJPEG server as a real process that a test can kill and restart on the same port."""

    def __init__(self, port: int, corrupt_every: int = 0, stamp_offset: float | None = None) -> None:
        self.port, self.corrupt_every, self.stamp_offset = port, corrupt_every, stamp_offset
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> None:
        stamp = [] if self.stamp_offset is None else [str(self.stamp_offset)]
        self.proc = subprocess.Popen([sys.executable, str(SERVER), str(self.port), str(self.corrupt_every), *stamp],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def camera() -> Iterator[Camera]:
    cam = Camera(free_port())
    cam.start()
    yield cam
    cam.kill()


def frames_from(reader: LiveReader, n: int, timeout: float = 10.0) -> list:
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        frame = reader.read(timeout=0.5)
        if frame is not None:
            out.append(frame)
    return out


def test_source_kinds() -> None:
    assert source_kind("rtsp://cam/1") == SourceKind.RTSP
    assert source_kind("HTTPS://cam/x.mjpg") == SourceKind.HTTP
    assert source_kind(0) == SourceKind.DEVICE and source_kind("2") == SourceKind.DEVICE
    assert source_kind("/data/clip.mp4") == SourceKind.FILE


def test_reconnect_first_retry_is_immediate_then_short_jittered_backoff() -> None:
    policy = ReconnectPolicy(initial_s=0.25, max_s=1.0, unreachable_max_s=15.0, jitter=0.0)
    assert [policy.delay(a) for a in range(1, 7)] == [0.0, 0.25, 0.5, 1.0, 1.0, 1.0]
    assert policy.delay(20, host_answers=False) == 15.0  # nothing answers: no need to knock every second
    jittered = {ReconnectPolicy().delay(10) for _ in range(50)}
    assert len(jittered) > 40 and all(0.8 <= d <= 1.2 for d in jittered)  # cameras do not retry in lockstep


def test_credentials_are_masked_in_shown_sources() -> None:
    assert shown_source("rtsp://admin:p@ss:w0rd@10.0.0.5:554/Streaming/101") == "rtsp://***@10.0.0.5:554/Streaming/101"
    assert shown_source("http://cam/snap.cgi?user=admin&pwd=s3cret&ch=1") == "http://cam/snap.cgi?user=admin&pwd=***&ch=1"
    assert shown_source("rtsp://cam/live?token=abc") == "rtsp://cam/live?token=***"
    assert shown_source("/data/clip.mp4") == "/data/clip.mp4" and shown_source(0) == "0"


def test_tcp_answer_tells_refused_from_listening(camera: Camera) -> None:
    assert tcp_answer(camera.url) == "listening"
    assert tcp_answer(f"rtsp://127.0.0.1:{free_port()}/x") == "refused"
    assert tcp_answer("/data/clip.mp4") is None


def test_dead_stream_is_reopened_and_reader_keeps_running(camera: Camera) -> None:
    reader = LiveReader("cam1", camera.url, open_timeout_s=2.0)
    with reader:
        before = frames_from(reader, 5)
        assert len(before) == 5 and before[0].image.shape == (120, 160, 3)
        assert reader.stats.last_error is None and reader.stats.state == SourceState.ONLINE
        camera.kill()
        assert wait_for(lambda: not reader.stats.online, 10), "the reader never noticed the dead source"
        time.sleep(1.5)  # a few failed reconnects against nobody
        assert reader.stats.open_failures >= 1
        assert reader.stats.last_error is not None and "connection refused" in reader.stats.last_error
        restarted = time.monotonic()
        camera.start()
        assert wait_for(lambda: reader.stats.reconnects >= 1, 15), "never reconnected"
        after = frames_from(reader, 5)
        assert time.monotonic() - restarted < 4.0, "a refusing host is retried at least every second"
        assert len(after) == 5
        assert after[0].index > before[-1].index and after[0].ts > before[-1].ts
        assert reader.stats.last_error is None, "the error of the outage outlived it"
        assert reader.stats.online and reader._thread.is_alive()
    assert not reader._thread.is_alive()


def test_stalled_mjpeg_camera_goes_offline_within_6_s_and_comes_back(camera: Camera) -> None:
    assert camera.proc is not None
    with LiveReader("cam5", camera.url, stall_s=3.0) as reader:
        assert frames_from(reader, 3)
        camera.proc.send_signal(signal.SIGSTOP)  # TCP stays open, nothing comes
        stopped = time.monotonic()
        try:
            assert wait_for(lambda: reader.stats.state == SourceState.STALLED, 8)
            assert time.monotonic() - stopped < 6.0 and not reader.stats.online
            assert reader.stats.last_error is not None and reader.stats.last_error.startswith("stalled")
        finally:
            camera.proc.send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        assert frames_from(reader, 3)
        assert time.monotonic() - resumed < 6.0
        assert reader.stats.online and reader.stats.last_error is None and reader.stats.stalls >= 1


def test_garbled_frames_are_skipped_without_reconnecting() -> None:
    cam = Camera(free_port(), corrupt_every=4)
    cam.start()
    try:
        with LiveReader("cam2", cam.url) as reader:
            got = frames_from(reader, 25)
            assert len(got) == 25
            assert reader.stats.bad_reads >= 3
            assert reader.stats.reconnects == 0
    finally:
        cam.kill()


def test_slow_consumer_gets_the_newest_frame_not_a_backlog(camera: Camera) -> None:
    with LiveReader("cam3", camera.url) as reader:
        assert frames_from(reader, 1)
        time.sleep(1.0)  # the consumer stalls for 1 s (~20 frames arrive)
        frame = reader.read(timeout=1.0)
        assert frame is not None
        assert time.time() - frame.ts < 0.3, "latency grew: an old frame was queued"
        assert reader.stats.frames_dropped >= 10


@pytest.mark.parametrize(("stamp_offset", "clock", "ahead_s"), [
    (0.6, "x-timestamp", 0.6),  # stamped by a clock 0.6 s ahead: frames carry the camera's time
    (30.0, "decode", 0.0),  # 30 s off: not believed, decode time, the skew reported
    (None, "decode", 0.0)])  # no stamps: decode time
def test_mjpeg_frames_carry_their_part_timestamps_where_they_can_be_believed(
        stamp_offset: float | None, clock: str, ahead_s: float) -> None:
    cam = Camera(free_port(), stamp_offset=stamp_offset)
    cam.start()
    try:
        with LiveReader("cam6", cam.url) as reader:
            frames = frames_from(reader, 10)
            arrived = time.time()
            health = CameraMetrics("cam6", ingest=reader.stats).health()
    finally:
        cam.kill()
    assert len(frames) == 10 and health.clock == clock
    assert abs(frames[-1].ts - arrived - ahead_s) < 0.3, frames[-1].ts - arrived
    if stamp_offset is None:
        assert health.clock_skew_s is None
    else:
        assert health.clock_skew_s is not None and abs(health.clock_skew_s + stamp_offset) < 0.3


def make_video(path: Path, seconds: float, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    for i in range(int(seconds * fps)):
        writer.write(np.full((120, 160, 3), (i * 7) % 250, np.uint8))
    writer.release()
    return path


def test_file_at_real_speed_ends_and_stamps_from_start_time(tmp_path: Path) -> None:
    video = make_video(tmp_path / "short.avi", 1.5)
    started = time.monotonic()
    with LiveReader("cam4", str(video), start_time=1_000_000.0) as reader:
        frames = []
        while not reader.finished:
            f = reader.read(timeout=0.5)
            if f is not None:
                frames.append(f)
    assert 1.2 <= time.monotonic() - started <= 4.0  # real speed, not as fast as possible
    assert len(frames) >= 10
    assert frames[0].ts == pytest.approx(1_000_000.0) and frames[-1].ts <= 1_000_001.5


def test_file_replay_samples_deterministically(vtest_avi: Path) -> None:
    replay = FileReplay("vt", vtest_avi, sample_fps=2.0, start_time=100.0)
    frames = [(f.index, f.ts) for f in replay]
    assert replay.fps == 10.0 and replay.frame_count == 795
    assert len(frames) == 159 == replay.expected_samples()  # 0 .. 79.0 s every 0.5 s
    assert frames[:3] == [(0, 100.0), (5, 100.5), (10, 101.0)]
    assert np.allclose(np.diff([ts for _, ts in frames]), 0.5)
    assert [(f.index, f.ts) for f in FileReplay("vt", vtest_avi, sample_fps=2.0, start_time=100.0)] == frames


def test_damaged_file_replays_without_crashing(vtest_avi: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.avi"
    shutil.copy(vtest_avi, damaged)
    data = bytearray(damaged.read_bytes())
    rng = np.random.default_rng(3)
    for start in (len(data) // 4, len(data) // 2, 3 * len(data) // 4):
        data[start:start + 20000] = rng.integers(0, 256, 20000, dtype=np.uint8).tobytes()
    damaged.write_bytes(bytes(data))
    replay = FileReplay("bad", damaged, sample_fps=5.0)
    frames = list(replay)
    assert len(frames) > 300  # most of the 398 samples survive
    assert all(f.image.shape == (576, 768, 3) for f in frames)
