"""Parking evidence on the edge: a video of a parked car -> events with the plate, the timed stills and
the plate crop; votes across frames; plate info on the wire."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_agent.config import parse_camera_config
from edge_agent.pipeline import replay
from edge_agent.plates.reader import PlateRead
from edge_agent.plates.vote import PlateVote
from edge_agent.sinks import FolderSink, read_folder_events
from protocol.messages import MediaKind, PlateInfo
from protocol.plates import PlateColour
from tests.edge_agent.plates.parked_video import STREET, STREET_PLATE, STREET_ZONE, parked_car_video
from tests.shared_data import shared_file


def _read(text: str, score: float, colour: PlateColour = PlateColour.BLUE) -> PlateRead:
    return PlateRead(text, colour, score, score, (0, 0, 10, 3), np.zeros((4, 2), np.float32))


def test_one_bad_frame_does_not_decide_the_plate() -> None:
    vote = PlateVote()
    vote.add(_read("皖A·73C38", 0.97))  # one confident misread
    vote.add(None)  # a frame with nothing legible
    vote.add(_read("皖A·73C39", 0.90))
    vote.add(_read("皖A·73C39", 0.88, PlateColour.YELLOW))
    vote.add(_read("皖A·73C39", 0.91))
    v = vote.verdict()
    assert (v.text, v.colour, v.frames, v.attempts) == ("皖A·73C39", PlateColour.BLUE, 3, 5)
    assert v.score == pytest.approx((0.90 + 0.88 + 0.91) / 3)
    assert PlateVote().verdict().text is None


@pytest.mark.slow
def test_parked_car_video_gives_the_plate_the_timed_stills_and_the_crop(tmp_path) -> None:
    from edge_agent.detect import Detector

    video = parked_car_video(shared_file(STREET), tmp_path / "parked.avi")
    cfg = parse_camera_config({
        "id": "street-1", "source": str(video), "timezone": "Asia/Shanghai", "detect_fps": 2,
        "start_time": "2026-03-02T10:00:00", "place": "长江路东段", "zones": [STREET_ZONE],
        "rules": [{"class_id": "illegal_car_parking", "zones": ["np_kerb"], "params": {"min_dwell_s": 8}}],
        "evidence": {"pre_s": 2, "post_s": 2}})
    out = tmp_path / "events"
    replay(cfg, str(video), Detector.load(threads=2), FolderSink(out), device_id="box-1")
    events = read_folder_events(out)
    read = [e for e in events if e.plate is not None and e.plate.text is not None]
    assert [e.plate.text for e in read] == [STREET_PLATE]
    event = read[0]
    assert event.plate.colour == PlateColour.GREEN and event.plate.frames >= 1
    assert event.plate.score >= 0.8 and event.plate.attempts <= cfg.plates.max_reads
    kinds = {m.name: m.kind for m in event.media}
    assert {n for n, k in kinds.items() if k == MediaKind.STILL} == {"still_1.jpg", "still_2.jpg", "still_3.jpg"}
    assert kinds["plate.jpg"] == MediaKind.PLATE
    folder = out / event.event_id
    plate = cv2.imread(str(folder / "plate.jpg"))
    assert plate.shape[0] >= 120 and 2.0 <= plate.shape[1] / plate.shape[0] <= 5.0  # upscaled, plate-shaped
    first, fired = cv2.imread(str(folder / "still_1.jpg")), cv2.imread(str(folder / "still_2.jpg"))
    assert first.shape == fired.shape == (1080, 1920, 3)  # wide views
    # The burned-in line (time, camera, place): white glyphs on a black band across the top left.
    band = first[:30, :600].astype(int)
    original = cv2.imread(str(shared_file(STREET)))[:30, :600].astype(int)
    assert (band < 40).mean() > 0.6 and (band > 200).mean() > 0.03 and original.mean() > 100
    assert cv2.imread(str(folder / "still_3.jpg")).shape[0] >= 480  # the close-up
    # The other vehicles in the zone (a dark car, a motorcycle) show no legible plate: no guess.
    for other in (e for e in events if e not in read):
        assert other.plate is not None and other.plate.text is None


def test_plate_info_on_the_wire() -> None:
    from protocol.messages import ProblemEvent

    info = PlateInfo(text="苏ED51712", colour=PlateColour.GREEN, score=0.9, frames=2, attempts=3)
    assert info.text == "苏E·D51712"
    with pytest.raises(ValueError, match="not a Chinese licence plate"):
        PlateInfo(text="苏E·D5171X2", colour=PlateColour.GREEN, frames=1, attempts=1)
    with pytest.raises(ValueError, match="needs its colour"):
        PlateInfo(text="苏E·D51712", frames=1, attempts=1)
    with pytest.raises(ValueError, match="cannot exceed attempts"):
        PlateInfo(frames=2, attempts=1)
    base = {"event_id": "e" * 16, "problem_id": "p" * 16, "device_id": "box-1", "camera_id": "c1",
            "class_id": "illegal_car_parking", "state": "opened", "box": {"x1": 0, "y1": 0, "x2": 1, "y2": 1},
            "score": 0.9, "first_seen": "2026-03-02T02:00:00Z", "observed_at": "2026-03-02T02:05:00Z", "dwell_s": 300}
    old = ProblemEvent.model_validate({**base, "v": 1})  # an old agent's event is still taken
    assert old.v == 1 and old.plate is None
    assert ProblemEvent.model_validate({**base, "plate": info.model_dump()}).v == 2
    with pytest.raises(ValueError, match="version 1 event cannot carry it"):
        ProblemEvent.model_validate({**base, "v": 1, "plate": info.model_dump()})
