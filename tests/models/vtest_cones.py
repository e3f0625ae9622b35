"""The traffic cones along the tape in vtest.avi, labelled by hand once (pixel boxes at 768x576).

The four cones stand still for the whole clip; a walker hides cone 1 in a few frames, and those
boxes are left out, as a reviewer would leave them out. Frames are every 2 s of the 80 s clip.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2

WIDTH, HEIGHT = 768, 576
CONES = ((37, 173, 49, 192), (164, 187, 177, 206), (292, 186, 307, 209), (441, 177, 454, 201))
HIDDEN = {(260, 1), (660, 1), (680, 1)}  # (frame index, cone index) a walker covers
FRAME_STEP = 20  # 10 fps: one frame per 2 s
CLIP_START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def cone_boxes(index: int) -> list[list[float]]:
    """Normalised xyxy of the cones visible in frame `index`."""
    return [[x1 / WIDTH, y1 / HEIGHT, x2 / WIDTH, y2 / HEIGHT]
            for k, (x1, y1, x2, y2) in enumerate(CONES) if (index, k) not in HIDDEN]


def extract_frames(video: Path, out: Path, step: int = FRAME_STEP) -> list[tuple[int, Path]]:
    """Every `step`-th frame as JPEG; returns (frame index, path)."""
    out.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(str(video))
    written, index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % step == 0:
            path = out / f"vtest-{index:04d}.jpg"
            cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
            written.append((index, path))
        index += 1
    capture.release()
    return written


def taken_at(index: int) -> datetime:
    return CLIP_START + timedelta(seconds=index / 10)


def label_through_hub(frames: list[tuple[int, Path]], root: Path) -> Path:
    """Each frame a case on a hub (one event with the frame as its snapshot); a reviewer puts the cone
    boxes on it with PUT /cases/{id}/labels, as the page does; GET /labels/export gives the labels file."""
    import hashlib
    import io
    import zipfile

    from fastapi.testclient import TestClient

    from hub.app import create_app, open_store
    from hub.auth.tokens import create_token
    from hub.cases.lifecycle import Role
    from hub.settings import HubSettings
    from protocol.messages import MediaKind, MediaRef, ModelInfo, NormBox, ProblemEvent, ProblemState

    settings = HubSettings(data_dir=root / "hub", zmq_bind=None)
    store = open_store(settings)
    cases = []
    for seq, (index, path) in enumerate(frames, 1):
        jpeg = path.read_bytes()
        event = ProblemEvent(
            event_id=f"vtest-ev-{index:05d}", problem_id=f"vtest-pr-{index:05d}", device_id="box-1", camera_id="vtest",
            class_id="work_zone_on_road", state=ProblemState.OPENED, zone=f"tape-{index}",
            box=NormBox(x1=0.0, y1=0.28, x2=0.62, y2=0.38), score=0.5, labels=["person"], first_seen=taken_at(index),
            observed_at=taken_at(index), dwell_s=0.0, model=ModelInfo(name="coco-nanodet", sha256="0" * 64),
            media=[MediaRef(name="snapshot.jpg", kind=MediaKind.SNAPSHOT, content_type="image/jpeg", size=len(jpeg),
                            sha256=hashlib.sha256(jpeg).hexdigest())])
        result = store.ingest_event(event, {"snapshot.jpg": jpeg}, manifest=b"{}", signature=b"s" * 64, seq=seq)
        cases.append((index, result.case_id))
    reviewer = {"Authorization": f"Bearer {create_token(store, 'labeller', Role.REVIEWER)[1]}"}
    with TestClient(create_app(settings, store=store, background=False)) as client:
        for index, case_id in cases:
            boxes = [{"label": "traffic_cone", "box": b} for b in cone_boxes(index)]
            r = client.put(f"/cases/{case_id}/labels", headers=reviewer, json={"boxes": boxes})
            assert r.status_code == 200, r.text
        export = client.get("/labels/export", headers=reviewer)
        assert export.status_code == 200, export.text
    store.close()
    with zipfile.ZipFile(io.BytesIO(export.content)) as zf:
        zf.extractall(root / "labelled")
    return root / "labelled" / "labels.jsonl"
