"""Labels on a case's frame through the API the page uses (hub.releases.labels), and the export that
`cityeye models dataset` reads."""

from __future__ import annotations

import io
import json
import zipfile

from models.dataset import read_labels
from tests.hub.hubfactory import ingest, make_event


def _case(store, n: int, labels: list[str], box=(0.1, 0.2, 0.3, 0.6)) -> str:
    event, media = make_event(camera_id="cam-1", problem_id=f"prob-{n:05d}", zone=f"z{n}", box=box,
                              class_id="work_zone_on_road", media_tag=f"frame-{n}")
    event = event.model_copy(update={"labels": labels})
    return ingest(store, event, media, seq=n).case_id


def test_reviewer_corrects_the_detectors_boxes(store, client, tokens):
    case_id = _case(store, 1, ["traffic_cone"])
    shown = client.get(f"/cases/{case_id}/labels", headers=tokens["reviewer"]).json()
    assert shown["source"] == "detector"  # pre-labels: the detector's own box, to correct
    assert shown["boxes"] == [{"label": "traffic_cone", "box": [0.1, 0.2, 0.3, 0.6]}]
    boxes = [{"label": "traffic_cone", "box": [0.12, 0.2, 0.3, 0.6]},
             {"label": "road_barrier", "box": [0.5, 0.5, 0.7, 0.6]}]
    saved = client.put(f"/cases/{case_id}/labels", headers=tokens["reviewer"], json={"boxes": boxes})
    assert saved.status_code == 200, saved.text
    assert saved.json()["source"] == "reviewer" and saved.json()["labelled_by"] == "reviewer:reviewer-1"
    assert client.get(f"/cases/{case_id}/labels", headers=tokens["reader"]).status_code == 403
    bad = client.put(f"/cases/{case_id}/labels", headers=tokens["reviewer"],
                     json={"boxes": [{"label": "cone_stack", "box": [0.1, 0.1, 0.2, 0.2]}]})
    assert bad.status_code == 422 and "boxes[0].label: 'cone_stack' is not a catalog label" in bad.text
    new = {"name": "cone_stack", "name_zh": "锥桶堆"}
    assert client.post("/labels/names", headers=tokens["reviewer"], json=new).status_code == 403
    nameless = client.post("/labels/names", headers=tokens["admin"], json={"name": "cone_stack"})
    assert nameless.status_code == 422 and nameless.json()["params"]["field"] == "name_zh"
    assert client.post("/labels/names", headers=tokens["admin"], json=new).status_code == 204
    assert "cone_stack" in client.get("/labels/names", headers=tokens["reviewer"]).json()
    named = {x["id"]: x for x in client.get("/labels", headers=tokens["reviewer"]).json()}
    assert named["cone_stack"] == {"id": "cone_stack", "name_zh": "锥桶堆", "name_en": "cone stack", "source": "admin"}
    assert (named["car"]["name_zh"], named["car"]["source"]) == ("汽车", "detector")
    assert (named["garbage_bag"]["name_zh"], named["garbage_bag"]["source"]) == ("垃圾袋", "catalog")
    renamed = {**new, "name_zh": "锥桶", "name_en": "cones"}
    assert client.post("/labels/names", headers=tokens["admin"], json=renamed).status_code == 204
    named = {x["id"]: x for x in client.get("/labels", headers=tokens["reviewer"]).json()}
    assert (named["cone_stack"]["name_zh"], named["cone_stack"]["name_en"]) == ("锥桶", "cones")
    flipped = client.put(f"/cases/{case_id}/labels", headers=tokens["reviewer"],
                         json={"boxes": [{"label": "cone_stack", "box": [0.3, 0.1, 0.2, 0.2]}]})
    assert flipped.status_code == 422 and "must satisfy 0 <= x1 < x2 <= 1" in flipped.text
    nothing = client.put(f"/cases/{case_id}/labels", headers=tokens["reviewer"], json={"nothing": True}).json()
    assert nothing["nothing"] and nothing["boxes"] == []
    assert client.get("/cases/NOPE/labels", headers=tokens["reviewer"]).status_code == 404


def test_export_gives_labelled_confirmed_and_voided_frames(store, client, tokens, tmp_path):
    labelled = _case(store, 1, ["traffic_cone"])
    confirmed = _case(store, 2, ["traffic_cone"])
    voided = _case(store, 3, ["truck"])
    _case(store, 4, ["traffic_cone"])  # pending review: not exported
    client.put(f"/cases/{labelled}/labels", headers=tokens["reviewer"],
               json={"boxes": [{"label": "traffic_cone", "box": [0.2, 0.2, 0.25, 0.3]}]})
    assert client.post(f"/cases/{confirmed}/confirm", headers=tokens["reviewer"], json={}).status_code == 200
    assert client.post(f"/cases/{voided}/void", headers=tokens["reviewer"], json={"note": "a van"}).status_code == 200
    r = client.get("/labels/export", headers=tokens["reviewer"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        zf.extractall(tmp_path / "labels")
    records = [json.loads(line) for line in (tmp_path / "labels" / "labels.jsonl").read_text().splitlines()]
    by_source = {rec["source"]: rec for rec in records}
    assert sorted(by_source) == ["confirmed", "review", "voided"]
    assert by_source["review"]["boxes"] == [{"label": "traffic_cone", "box": [0.2, 0.2, 0.25, 0.3]}]
    assert by_source["voided"]["negatives"] == ["truck"] and by_source["voided"]["boxes"] == []
    frames = read_labels(tmp_path / "labels" / "labels.jsonl")  # what `cityeye models dataset` reads
    assert len(frames) == 3 and all(f.image.is_file() for f in frames)
