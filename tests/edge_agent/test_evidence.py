"""Evidence per event: original snapshot untouched, annotated copy with heads blurred, crop inside the
frame, a clip that decodes and spans pre+post seconds, and hashes that match the bytes."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.config import EvidenceConfig
from edge_agent.evidence import EvidenceBuilder
from edge_agent.sinks import MemorySink
from edge_agent.types import Frame, ProblemUpdate, Track, TrackState
from protocol.messages import MediaKind
from tests.edge_agent.edge_fakes import textured_frame

W, H = 640, 480
T0 = 1_780_000_000.0
PERSON = (200.0, 100.0, 280.0, 400.0)  # head: the top 22 % of the box


def person(xyxy: tuple[float, float, float, float] = PERSON) -> Track:
    return Track(track_id=1, class_id=0, label="person", xyxy=xyxy, score=0.9, state=TrackState.TRACKED,
                 first_seen=T0, last_seen=T0, stationary_since=T0)


def update(xyxy: tuple[float, float, float, float], state: str = "opened") -> ProblemUpdate:
    return ProblemUpdate(problem_id="problem-0001", class_id="begging", state=state, camera_id="cam", zone=None,
                         xyxy=xyxy, score=0.8, labels=("person",), track_ids=(1,), first_seen=T0,
                         observed_at=T0 + 10, dwell_s=10.0)


def builder(sink: MemorySink, fps: float = 5.0, **evidence: object) -> EvidenceBuilder:
    cfg = EvidenceConfig.model_validate({"pre_s": 2, "post_s": 2, **evidence})
    return EvidenceBuilder(cfg, camera_id="cam", device_id="box", clip_fps=fps, sink=sink)


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def fire(b: EvidenceBuilder, u: ProblemUpdate, image: np.ndarray, *, fps: float = 5.0,
         before_s: float = 4.0, after_s: float = 4.0, track: Track | None = None) -> None:
    """Feed frames for `before_s`, fire `u` on the next one, then feed `after_s` more."""
    n_before, n_after = int(before_s * fps), int(after_s * fps)
    for i in range(n_before):
        b.add_frame(Frame("cam", i, T0 + i / fps, image))
    at = Frame("cam", n_before, T0 + n_before / fps, image)
    b.add_frame(at)
    b.on_updates([u], at, [track or person()])
    for i in range(n_before + 1, n_before + 1 + n_after):
        b.add_frame(Frame("cam", i, T0 + i / fps, image))
    b.flush()


def test_annotated_copy_blurs_heads_and_the_original_stays_untouched() -> None:
    sink = MemorySink()
    image = textured_frame(W, H, seed=3)
    pristine = image.copy()
    fire(builder(sink, blur_faces=True, clip=False), update(PERSON), image)
    (event, media), = sink.items
    assert np.array_equal(image, pristine)  # the frame the pipeline keeps was never drawn on
    snapshot, annotated = decode(media["snapshot.jpg"]), decode(media["annotated.jpg"])
    x1, y1, x2, _ = (int(v) for v in PERSON)
    head = (slice(y1 + 15, y1 + 60), slice(x1 + 15, x2 - 15))  # inside the head band, clear of the drawn box
    # Random noise survives JPEG at q90 in the original; blurring flattens it on the annotated copy.
    assert np.abs(snapshot[head].astype(int) - pristine[head]).mean() < 20
    assert annotated[head].std() < 0.3 * snapshot[head].std()
    legs = (slice(330, 390), slice(x1 + 15, x2 - 15))  # below the head band: not blurred
    assert annotated[legs].std() > 0.8 * snapshot[legs].std()


def test_annotated_still_shows_the_frame_time_in_the_camera_timezone() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from edge_agent.annotate import draw_time

    sink = MemorySink()
    cfg = EvidenceConfig.model_validate({"pre_s": 2, "post_s": 2, "clip": False})
    b = EvidenceBuilder(cfg, camera_id="cam", device_id="box", clip_fps=5.0, sink=sink, timezone="Asia/Shanghai")
    image = np.full((H, W, 3), 128, np.uint8)
    fire(b, update((400.0, 100.0, 500.0, 300.0)), image)
    (event, media), = sink.items
    fired_ts = T0 + 4.0  # fire() fires on the frame after 4 s of pre-roll
    assert event.observed_at.timestamp() == pytest.approx(T0 + 10)  # the rule's time, separately checked
    annotated = decode(media["annotated.jpg"]).astype(int)
    expected, wrong = image.copy(), image.copy()
    draw_time(expected, datetime.fromtimestamp(fired_ts, ZoneInfo("Asia/Shanghai")))
    draw_time(wrong, datetime.fromtimestamp(fired_ts + 3611.111, ZoneInfo("Asia/Shanghai")))
    rows, cols = np.nonzero((expected != image).any(axis=2))
    corner = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))  # the drawn stamp
    assert rows.min() > H * 0.9 and cols.min() == 0  # bottom-left
    assert np.abs(annotated[corner] - expected[corner]).mean() < 4  # the same text, JPEG noise aside
    assert np.abs(annotated[corner] - wrong[corner]).mean() > 2 * np.abs(annotated[corner] - expected[corner]).mean()


def test_without_blur_faces_the_head_is_not_blurred() -> None:
    sink = MemorySink()
    image = textured_frame(W, H, seed=3)
    fire(builder(sink, clip=False), update(PERSON), image)
    (_, media), = sink.items
    snapshot, annotated = decode(media["snapshot.jpg"]), decode(media["annotated.jpg"])
    head = (slice(115, 160), slice(215, 265))
    assert annotated[head].std() > 0.8 * snapshot[head].std()


@pytest.mark.parametrize("box", [(600.0, 440.0, 660.0, 500.0), (-30.0, -20.0, 40.0, 60.0), PERSON])
def test_crop_stays_inside_the_frame(box: tuple[float, float, float, float]) -> None:
    sink = MemorySink()
    fire(builder(sink, clip=False, crop_margin=0.5), update(box), textured_frame(W, H), track=person(box))
    (_, media), = sink.items
    crop = decode(media["crop.jpg"])
    ch, cw = crop.shape[:2]
    assert 2 <= cw <= W and 2 <= ch <= H
    x1, y1, x2, y2 = box
    visible_w, visible_h = min(W, x2) - max(0, x1), min(H, y2) - max(0, y1)
    assert cw >= visible_w - 1 and ch >= visible_h - 1  # the whole visible object is in it


def test_clip_decodes_and_spans_pre_and_post_roll() -> None:
    sink = MemorySink()
    fps = 5.0
    # Frames whose brightness encodes their index, to check order and extent in the decoded clip.
    b = builder(sink, fps=fps)
    images = [np.full((H, W, 3), 10 + 4 * i, np.uint8) for i in range(45)]
    for i, img in enumerate(images[:21]):
        b.add_frame(Frame("cam", i, T0 + i / fps, img))
    at = Frame("cam", 20, T0 + 20 / fps, images[20])
    b.on_updates([update(PERSON)], at, [person()])
    for i in range(21, 45):
        b.add_frame(Frame("cam", i, T0 + i / fps, images[i]))
    assert len(sink.items) == 1  # sent once its 2 s post-roll was in, before the stream ended
    event, media = sink.items[0]
    ref = next(m for m in event.media if m.kind == MediaKind.CLIP)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ref.name
        path.write_bytes(media[ref.name])
        cap = cv2.VideoCapture(str(path))
        assert cap.isOpened()
        got = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            got.append(round(float(frame.mean())))
        clip_fps = cap.get(cv2.CAP_PROP_FPS)
        cap.release()
    assert clip_fps == pytest.approx(fps)
    span_s = (len(got) - 1) / clip_fps
    assert span_s == pytest.approx(2 + 2, abs=1 / fps + 1e-6)  # pre_s + post_s
    first, last = (got[0] - 10) / 4, (got[-1] - 10) / 4
    assert first == pytest.approx(10, abs=1) and last == pytest.approx(30, abs=1)  # 2 s before, 2 s after #20
    assert got == sorted(got)


def test_media_hashes_and_sizes_match_the_bytes() -> None:
    sink = MemorySink()
    fire(builder(sink), update(PERSON), textured_frame(W, H))
    fire(builder(sink), update(PERSON, state="cleared"), textured_frame(W, H))
    assert len(sink.items) == 2
    for event, media in sink.items:
        assert set(media) == {m.name for m in event.media}
        for ref in event.media:
            assert ref.size == len(media[ref.name])
            assert ref.sha256 == hashlib.sha256(media[ref.name]).hexdigest()
    opened, cleared = (e for e, _ in sink.items)
    assert {m.kind for m in opened.media} == {MediaKind.SNAPSHOT, MediaKind.ANNOTATED, MediaKind.CROP,
                                              MediaKind.CLIP}
    assert {m.kind for m in cleared.media} == {MediaKind.SNAPSHOT, MediaKind.ANNOTATED}


def test_annotated_image_names_the_class_in_chinese_legibly_at_1080p() -> None:
    """The label region of the decoded JPEG matches the label rendered straight from the shipped font,
    and a row of .notdef boxes of the same length matches it far worse."""
    from PIL import Image, ImageDraw, ImageFont

    from edge_agent.evidence import problem_label
    from protocol.fonts import FONT_PATH
    from protocol.fonts.text import label_size_px

    w, h = 1920, 1080
    sink = MemorySink()
    car = (1200.0, 300.0, 1600.0, 600.0)
    u = ProblemUpdate(problem_id="problem-car", class_id="illegal_car_parking", state="opened", camera_id="cam",
                      zone=None, xyxy=car, score=0.8, labels=("car",), track_ids=(1,), first_seen=T0,
                      observed_at=T0 + 31, dwell_s=31.0)
    frame = Frame("cam", 0, T0, np.full((h, w, 3), 90, np.uint8))
    b = builder(sink, clip=False)
    b.on_updates([u], frame, [])
    b.flush()
    (_, media), = sink.items
    annotated = cv2.cvtColor(decode(media["annotated.jpg"]), cv2.COLOR_BGR2GRAY)
    text = problem_label("illegal_car_parking", "opened", 31.0)
    assert text == "机动车乱停放 新发现 停留 31 秒"

    def render(s: str) -> np.ndarray:
        font = ImageFont.truetype(str(FONT_PATH), label_size_px((h, w)))
        ascent, descent = font.getmetrics()
        image = Image.new("L", (round(font.getlength(s)), ascent + descent), 0)
        ImageDraw.Draw(image).text((0, 0), s, font=font, fill=255)
        return np.asarray(image)

    def best_match(template: np.ndarray) -> tuple[float, tuple[int, int]]:
        region = annotated[150:320, 1150:1950 - 30]  # around the top-left corner of the box
        scores = cv2.matchTemplate(region, template, cv2.TM_CCOEFF_NORMED)
        _, best, _, at = cv2.minMaxLoc(scores)
        return best, (at[0] + 1150, at[1] + 150)

    label = render(text)
    assert label.shape[0] >= 36  # legible at 1080p: a 30 px em, about 1/36 of the frame's height
    score, (x, y) = best_match(label)
    tofu_score, _ = best_match(render("\U00020000" * 6 + text[6:]))
    print(f"label match {score:.3f}, tofu {tofu_score:.3f}")
    assert score > 0.85, f"the Chinese label is not on the image (best match {score:.2f})"
    assert tofu_score < score - 0.2, f"tofu boxes match as well as the glyphs ({tofu_score:.2f} vs {score:.2f})"
    assert abs(x - car[0]) < 20 and y + label.shape[0] <= car[1]  # above the box's top-left corner
