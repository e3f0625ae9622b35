"""StreamClock on synthetic timelines: frames get the time they were made, whatever the decode time."""

from __future__ import annotations

import pytest

from edge_agent.stream_clock import CameraClock, ClockSource, RtspClock, StreamClock, prft_wall_s

T0 = 1_800_000_000.0


def feed(clock: StreamClock, frames: list[tuple[float, float]]) -> list[float]:
    """(pts, wall) pairs -> frame times."""
    return [clock.frame_time(pts, wall) for pts, wall in frames]


def test_frames_out_of_a_backlog_keep_their_old_times() -> None:
    clock = StreamClock()
    live = [(i * 0.1, T0 + i * 0.1 + 0.05) for i in range(50)]  # 10 fps, 50 ms transport delay
    assert feed(clock, live)[-1] == pytest.approx(T0 + 4.9)
    # the agent stood still 30 s; then 3 s of buffered video come out at 100 fps
    backlog = [(5.0 + i * 0.1, T0 + 35.0 + i * 0.01) for i in range(30)]
    times = feed(clock, backlog)
    assert times[0] == pytest.approx(T0 + 5.0) and times[-1] == pytest.approx(T0 + 7.9)
    # live again: the server dropped what the buffers could not hold, the stream jumps ahead
    assert clock.frame_time(35.3, T0 + 35.35) == pytest.approx(T0 + 35.3)


def test_a_stream_clock_that_goes_back_stays_continuous() -> None:
    clock = StreamClock(frame_s=0.1)
    times = feed(clock, [(0.0, T0), (0.1, T0 + 0.1), (0.2, T0 + 0.2), (-0.1, T0 + 0.3), (0.0, T0 + 0.4)])
    assert times == pytest.approx([T0, T0 + 0.1, T0 + 0.2, T0 + 0.3, T0 + 0.4])


def test_a_steady_shift_at_the_real_rate_re_anchors_but_a_drain_or_stall_does_not() -> None:
    clock = StreamClock(late_s=2.0, resync_s=3.0)
    feed(clock, [(i * 0.1, T0 + i * 0.1) for i in range(20)])
    # The source paused its timeline 10 s (its clock did not move) and goes on at the real rate.
    shifted = feed(clock, [(2.0 + i * 0.1, T0 + 12.0 + i * 0.1) for i in range(60)])
    assert shifted[0] == pytest.approx(T0 + 2.0)  # looks 10 s old at first: dropped as stale
    assert shifted[-1] == pytest.approx(T0 + 17.9, abs=0.01)  # re-anchored after resync_s
    # A stream slowing to a stall (each frame later than the last) is never re-anchored.
    clock = StreamClock(late_s=2.0, resync_s=3.0)
    feed(clock, [(i * 0.1, T0 + i * 0.1) for i in range(20)])
    slow = feed(clock, [(2.0 + i * 0.1, T0 + 2.0 + i * 5.0) for i in range(1, 6)])
    assert slow == pytest.approx([T0 + 2.0 + i * 0.1 for i in range(1, 6)])


def test_a_stream_without_timestamps_gets_decode_times() -> None:
    clock = StreamClock()
    assert feed(clock, [(0.0, T0 + i) for i in range(5)]) == [T0 + i for i in range(5)]  # never "stale"


def test_sender_report_times_are_used_while_the_cameras_clock_agrees_with_ours() -> None:
    clock = RtspClock(StreamClock())
    # before the first SR: the stream clock; then SR times 0.4 s ahead of arrival minus 0.05 s delay
    assert clock.frame_time(0.0, None, T0 + 0.05) == pytest.approx(T0 + 0.05)
    assert clock.source is ClockSource.STREAM and clock.skew_s is None
    times = [clock.frame_time(i * 0.1, T0 + 0.4 + i * 0.1, T0 + i * 0.1 + 0.05) for i in range(1, 20)]
    assert clock.source is ClockSource.SENDER_REPORT and clock.skew_s == pytest.approx(-0.35)
    assert times[-1] == pytest.approx(T0 + 0.4 + 1.9)
    # a buffered frame keeps its SR time (30 s old): the reader drops it as stale
    assert clock.frame_time(2.0, T0 + 2.4, T0 + 32.0) == pytest.approx(T0 + 2.4)


def test_a_camera_clock_stepped_off_is_no_longer_believed() -> None:
    clock = RtspClock(StreamClock())
    for i in range(10):
        clock.frame_time(i * 0.1, T0 + i * 0.1, T0 + i * 0.1 + 0.05)
    assert clock.source is ClockSource.SENDER_REPORT
    # the camera's NTP steps its clock back 20 s: its SR times would make every frame stale
    ts = clock.frame_time(1.0, T0 + 1.0 - 20.0, T0 + 1.05)
    assert clock.source is ClockSource.STREAM and clock.skew_s == pytest.approx(20.0, abs=0.2)
    assert ts == pytest.approx(T0 + 1.0, abs=0.1)


def test_camera_clock_and_prft_side_data() -> None:
    camera = CameraClock(max_skew_s=1.0)
    assert camera.believe(T0, T0 + 0.2) and not camera.believe(T0 + 5.0, T0 + 0.3)  # now 4.7 s ahead
    assert prft_wall_s((1_796_655_661_798_561).to_bytes(8, "little", signed=True) + bytes(4)) == 1796655661.798561
