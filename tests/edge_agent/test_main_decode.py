"""The warm main-stream decoder: the same frames as decoding from the keyframe each time, while a
request for later times goes on from where the last one stopped instead of starting over."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.main_decode import MainDecoder
from edge_agent.streams import MainStreamFile, decode_at
from tests.edge_agent.test_streams import index_of, main_video  # noqa: F401  (fixture)


def test_later_requests_go_on_from_the_last_frame_with_the_same_picks(main_video: Path) -> None:  # noqa: F811
    main = MainStreamFile(main_video, keep_s=100, start_time=1000.0)
    main.advance_to(1003.95)
    decoder = MainDecoder()
    asks = [[1001.25, 1001.3, 1000.5], [1001.45], [1001.8], [1003.9]]
    for times in asks:
        info, packets = main.ring.since(min(times))
        got = decoder.images_at(info, packets, times)
        want = decode_at(info, packets, times)
        assert [index_of(i) for i in got] == [index_of(i) for i in want]
    # 10 fps, a keyframe every second. From the keyframe at 0 s to the first frame after 1.3 s (15
    # packets); then on from 1.5 s (1) and to 1.9 s (4); 3.9 s starts over at its own keyframe, 3.0 s
    # (10). From the keyframe each time: 15 + 6 + 10 + 10.
    assert (decoder.restarts, decoder.packets_decoded) == (2, 30)
    assert [index_of(i) for i in decoder.images_at(*main.ring.since(1003.9), [1003.9])] == [39]


def test_an_earlier_time_starts_over_at_its_keyframe(main_video: Path) -> None:  # noqa: F811
    main = MainStreamFile(main_video, keep_s=100, start_time=0.0)
    main.advance_to(3.95)
    decoder = MainDecoder()
    assert [index_of(i) for i in decoder.images_at(*main.ring.since(2.5), [2.5])] == [25]
    assert [index_of(i) for i in decoder.images_at(*main.ring.since(1.2), [1.2, 3.0])] == [12, 30]
    assert decoder.restarts == 2
    assert decoder.images_at(None, [], [1.0]) == []


@pytest.mark.parametrize("times", [[0.0], [3.9, 0.1]])
def test_times_at_the_span_ends(main_video: Path, times: list[float]) -> None:  # noqa: F811
    main = MainStreamFile(main_video, keep_s=100, start_time=0.0)
    main.advance_to(3.9)
    info, packets = main.ring.since(min(times))
    assert [index_of(i) for i in MainDecoder().images_at(info, packets, times)] == \
        [index_of(i) for i in decode_at(info, packets, times)]
