"""The student path on real frames: `cityeye models sample --prelabel coco-nanodet --hub` picks frames of
vtest.avi, the detector proposes its boxes, and the frames enter the hub's labelling queue as pre-labels
(a real served hub, the API the box editor uses). A reviewer corrects them (drops a box, adds the cones
COCO lacks, says "nothing" on one); the export carries them as `pseudo` frames, which `cityeye models
dataset` takes, or leaves out with --no-pseudo. No ultralytics needed."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import httpx
import pytest

from cityeye.cli import main
from hub.app import create_app, open_store
from hub.auth.tokens import create_token
from hub.cases.lifecycle import Role
from hub.settings import HubSettings
from models.cache import cached
from tests.conftest import shared_file
from tests.hub.served import serve_app
from tests.models.vtest_cones import cone_boxes

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def hub(tmp_path):
    settings = HubSettings(data_dir=tmp_path / "hub", zmq_bind=None)
    store = open_store(settings)
    tokens = {role: create_token(store, f"{role.value}-t", role)[1] for role in (Role.REVIEWER, Role.READER)}
    try:
        with serve_app(create_app(settings, store=store, background=False)) as base:
            yield base, tokens
    finally:
        store.close()


def test_detector_prelabels_sampled_frames_and_reviewers_correct_them(hub, tmp_path, capsys):
    base, tokens = hub
    video = shared_file("video/vtest.avi")
    reviewer = {"Authorization": f"Bearer {tokens[Role.REVIEWER]}"}
    out = tmp_path / "sampled"
    code = main(["models", "sample", f"vtest={video}", "--count", "6", "--start", "2026-12-07T09:00:00+08:00",
                 "--out", str(out), "--prelabel", "coco-nanodet", "--labels", "person", "--hub", base,
                 "--token", tokens[Role.REVIEWER]])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "6 frames queued for labelling" in printed.out
    written = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]

    queue = httpx.get(f"{base}/labels/frames", params={"reviewed": "false"}, headers=reviewer).json()
    assert queue["total"] == 6
    detector = cached("coco-nanodet")
    assert detector is not None
    by_image = {}
    for record in written:
        frame_id = hashlib.sha256((out / record["image"]).read_bytes()).hexdigest()[:32]
        by_image[record["image"]] = frame_id
        frame = httpx.get(f"{base}/labels/frames/{frame_id}", headers=reviewer).json()
        # what the editor draws is the detector's own boxes, marked as pre-labels to correct
        assert frame["source"] == "prelabel" and frame["proposed_by"]["sha256"] == detector.manifest.sha256
        assert [b["box"] for b in frame["boxes"]] == [p["box"] for p in record["proposals"]]
        assert all(b["label"] == "person" for b in frame["boxes"])
    people = [len(r["proposals"]) for r in written]
    assert sum(1 for n in people if n) >= 5 and sum(people) >= 15, people  # walkers are in nearly every frame

    # a reviewer corrects four frames: drops the weakest box, adds the cones; one frame is "nothing here"
    reviewed = written[:4]
    for record in reviewed[:3]:
        index = int(record["image"].rsplit("-", 1)[1].split(".")[0])
        kept = [{"label": p["label"], "box": p["box"]} for p in record["proposals"][:-1]]
        boxes = kept + [{"label": "traffic_cone", "box": b} for b in cone_boxes(index)]
        r = httpx.put(f"{base}/labels/frames/{by_image[record['image']]}", headers=reviewer, json={"boxes": boxes})
        assert r.status_code == 200, r.text
        assert r.json()["source"] == "reviewer" and len(r.json()["boxes"]) == len(boxes)
    r = httpx.put(f"{base}/labels/frames/{by_image[reviewed[3]['image']]}", headers=reviewer, json={"nothing": True})
    assert r.status_code == 200 and r.json()["boxes"] == []
    bad = httpx.put(f"{base}/labels/frames/{by_image[reviewed[0]['image']]}", headers=reviewer,
                    json={"boxes": [{"label": "zebra_unicorn", "box": [0.1, 0.1, 0.2, 0.2]}]})
    assert bad.status_code == 422 and "boxes[0].label" in bad.text
    assert httpx.get(f"{base}/labels/frames", params={"reviewed": "false"}, headers=reviewer).json()["total"] == 2

    # bad uploads name the field; readers may not queue frames
    jpeg = (out / written[0]["image"]).read_bytes()
    form = {"camera_id": "vtest", "taken_at": "2026-12-07T09:00:00+08:00"}
    assert "image" in httpx.post(f"{base}/labels/frames", headers=reviewer, data=form,
                                 files={"image": ("x.jpg", b"not a jpeg")}).text
    r = httpx.post(f"{base}/labels/frames", headers=reviewer, files={"image": ("x.jpg", jpeg)},
                   data={**form, "proposals": json.dumps([{"label": "person", "box": [0.5, 0.5, 0.4, 0.6]}])})
    assert r.status_code == 422 and "proposals[0].box" in r.text
    reader = {"Authorization": f"Bearer {tokens[Role.READER]}"}
    assert httpx.post(f"{base}/labels/frames", headers=reader, data=form,
                      files={"image": ("x.jpg", jpeg)}).status_code == 403

    # the export holds the reviewed frames only, as pseudo-labels; the dataset takes them or leaves them out
    export = httpx.get(f"{base}/labels/export", headers=reviewer)
    assert export.status_code == 200
    with zipfile.ZipFile(io.BytesIO(export.content)) as zf:
        zf.extractall(tmp_path / "labelled")
    records = [json.loads(line) for line in (tmp_path / "labelled" / "labels.jsonl").read_text().splitlines()]
    assert sorted(r["source"] for r in records) == ["nothing", "pseudo", "pseudo", "pseudo"]
    assert all(r["proposed_by"] == "coco-nanodet" for r in records)
    assert sum(b["label"] == "traffic_cone" for r in records for b in r["boxes"]) >= 9
    labels = str(tmp_path / "labelled" / "labels.jsonl")
    assert main(["models", "dataset", labels, "--out", str(tmp_path / "ds"), "--val", "0.5"]) == 0
    summary = capsys.readouterr().out
    assert "pseudo-labelled" in summary and "traffic_cone" in summary and "person" in summary
    assert main(["models", "dataset", labels, "--out", str(tmp_path / "ds2"), "--no-pseudo"]) == 0
    left = capsys.readouterr().out
    assert "pseudo-labelled" not in left and "1 train frames, 0 val frames" in left  # the "nothing" frame only
