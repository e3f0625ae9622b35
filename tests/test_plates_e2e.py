"""End to end with a legible plate: a video of a parked car (made from a fixture still) replayed by an
enrolled agent into a hub over ZeroMQ (`cityeye demo --video --camera`); the case shows the plate, the
three timed stills and the plate crop."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml

from tests.edge_agent.plates.parked_video import STREET, STREET_PLATE, STREET_ZONE, parked_car_video
from tests.shared_data import shared_file
from tests.test_demo_e2e import Api, _free_port, _wait, stop_demo


@pytest.mark.slow
def test_parked_car_video_to_a_case_with_its_plate_stills_and_crop(tmp_path) -> None:
    video = parked_car_video(shared_file(STREET), tmp_path / "parked.avi", seconds=24)
    camera = {"id": "street-1", "timezone": "Asia/Shanghai", "start_time": "2026-11-23T10:00:00", "detect_fps": 2,
              "place": "长江路东段", "zones": [STREET_ZONE], "evidence": {"pre_s": 2, "post_s": 2},
              "rules": [{"class_id": "illegal_car_parking", "zones": ["np_kerb"], "params": {"min_dwell_s": 8}}]}
    (tmp_path / "camera.yaml").write_text(yaml.safe_dump(camera, allow_unicode=True), encoding="utf-8")
    data, port, log = tmp_path / "demo", _free_port(), tmp_path / "demo.out"
    proc = subprocess.Popen([sys.executable, "-m", "cityeye", "demo", "--data", str(data), "--api",
                             f"127.0.0.1:{port}", "--video", str(video), "--camera", str(tmp_path / "camera.yaml")],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait((data / "token.txt").exists, 120, "the demo token", proc, log)
        api = Api(f"http://127.0.0.1:{port}", (data / "token.txt").read_text().strip())

        def read_case() -> dict | None:
            return next((c for c in api.cases() if (c.get("plate") or {}).get("text")), None)

        case = _wait(read_case, 420, "a case with a plate", proc, log)
        assert case["plate"]["text"] == STREET_PLATE and case["plate"]["colour"] == "green"
        detail = api.call("GET", f"/cases/{case['case_id']}")
        assert detail["plate"]["frames"] >= 1 and detail["plate"]["cases_90d"] == 1
        media = {m["name"]: m for e in detail["events"] for m in e["media"]}
        assert {"still_1.jpg", "still_2.jpg", "still_3.jpg", "plate.jpg"} <= set(media)
        assert {media[f"still_{i}.jpg"]["kind"] for i in (1, 2, 3)} == {"still"}
        crop = cv2.imdecode(np.frombuffer(api.call("GET", media["plate.jpg"]["url"]), np.uint8), cv2.IMREAD_COLOR)
        assert crop.shape[0] >= 120  # upscaled to be legible
        wide = cv2.imdecode(np.frombuffer(api.call("GET", media["still_1.jpg"]["url"]), np.uint8), cv2.IMREAD_COLOR)
        assert wide.shape == (1080, 1920, 3)
        assert api.call("GET", "/cases?plate=D517")["total"] >= 1
    finally:
        stop_demo(proc)
