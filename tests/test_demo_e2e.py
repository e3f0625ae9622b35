"""The whole loop as a user runs it: `cityeye demo` starts a real hub and a real enrolled edge
agent (CurveZMQ, signed evidence, the real detector) replaying vtest.avi; everything is checked
through the REST API. Mid-clip the agent is killed; the demo restarts it, it replays the clip
again, and the hub's dedup must still hold exactly two cases.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.shared_data import shared_file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return json.loads(raw) if response.headers.get_content_type() == "application/json" else raw

    def cases(self) -> list[dict]:
        return self.call("GET", "/cases?sort=first_seen&limit=100")["items"]


def _wait(predicate, timeout_s: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the demo exited early with {proc.returncode} while waiting for {what}:\n{log.read_text()}")
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            pass
        time.sleep(1.0)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_demo_whole_loop_with_agent_restart(tmp_path):
    shared_file("video/vtest.avi")  # the demo would otherwise download it
    data, api_port = tmp_path / "demo", _free_port()
    log = tmp_path / "demo.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cityeye", "demo", "--data", str(data), "--api", f"127.0.0.1:{api_port}",
         ], stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _run_checks(proc, data, api_port, log)
    finally:
        stop_demo(proc)


def stop_demo(proc: subprocess.Popen) -> None:
    """Ctrl-C the demo's process group (hub and agent with it); kill it if it does not stop in 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _run_checks(proc: subprocess.Popen, data: Path, api_port: int, log: Path) -> None:
    token_file = data / "token.txt"
    _wait(token_file.exists, 60, "the demo token", proc, log)
    api = Api(f"http://127.0.0.1:{api_port}", token_file.read_text().strip())
    _wait(lambda: api.call("GET", "/health"), 60, "the hub API", proc, log)

    # 1. two illegal-parking cases open once the vehicles have stood 30 s
    _wait(lambda: len(api.cases()) >= 2, 150, "two cases", proc, log)
    time.sleep(3)
    cases = api.cases()
    assert len(cases) == 2, cases
    assert {c["class_id"] for c in cases} == {"illegal_car_parking"}, "no case may come from pedestrians"
    assert {c["zone"] for c in cases} == {"np_top_right"}
    centres = sorted((c["box"]["x1"] + c["box"]["x2"]) / 2 for c in cases)
    assert 0.83 < centres[0] < 0.95, f"the van (x ≈ 0.85-0.94 of the frame): {centres}"
    assert centres[1] > 0.94, f"the car at the right edge: {centres}"

    _wait(lambda: "plate unreadable" in log.read_text(), 30, "the demo's table saying plate unreadable", proc, log)

    # 2. evidence: a decodable snapshot, a signature the hub re-verifies; the parked van and car are far
    # too small for their plates: the case says so and invents none
    for case in cases:
        detail = api.call("GET", f"/cases/{case['case_id']}")
        assert detail["plate"] is not None and detail["plate"]["text"] is None, detail["plate"]
        media = {m["name"]: m for e in detail["events"] for m in e.get("media", [])}
        assert {"snapshot.jpg", "annotated.jpg", "crop.jpg"} <= set(media), media.keys()
        jpeg = api.call("GET", media["snapshot.jpg"]["url"])
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (576, 768, 3)  # the main stream, not the 384x288 detect one
        clip = media.get("clip.mp4")
        assert clip and clip["content_type"] == "video/mp4", media.keys()
        clip_file = data / f"{case['case_id']}.mp4"
        clip_file.write_bytes(api.call("GET", clip["url"]))
        video = cv2.VideoCapture(str(clip_file))
        ok, first = video.read()
        video.release()
        assert ok and first.shape == (576, 768, 3)
        verify = subprocess.run([sys.executable, "-m", "cityeye", "hub", "verify", case["case_id"],
                                 "--data", str(data / "hub")], capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0 and "OK" in verify.stdout, verify.stdout + verify.stderr

    # 3. a reviewer confirms one: it is filed
    confirmed = api.call("POST", f"/cases/{cases[0]['case_id']}/confirm", {"note": "seen on the snapshot"})
    assert confirmed["status"] == "filed"
    dispatched = api.call("POST", f"/cases/{cases[0]['case_id']}/dispatch", {"unit": "east-squad"})
    assert dispatched["status"] == "dispatched" and dispatched["unit"] == "east-squad"

    # 4. kill the agent mid-clip; the demo restarts it and the clip plays again from the start
    counts = {c["case_id"]: c["event_count"] for c in api.cases()}
    agent_pid = int((data / "agent.pid").read_text())
    os.kill(agent_pid, signal.SIGKILL)
    _wait(lambda: int((data / "agent.pid").read_text()) != agent_pid, 30, "the agent restart", proc, log)

    # the restarted agent sees both vehicles stand 30 s again: its events join the same two cases
    def rejoined():
        now = api.cases()
        return now if sum(c["event_count"] for c in now) > sum(counts.values()) + 1 else None

    _wait(rejoined, 150, "the restarted agent's events", proc, log)
    restarted_pid = int((data / "agent.pid").read_text())
    _wait(lambda: not _alive(restarted_pid), 120, "the second pass to end", proc, log)
    final = api.cases()
    assert {c["case_id"] for c in final} == set(counts), "the restart must not open new cases"
    assert {c["case_id"]: c["status"] for c in final}[cases[0]["case_id"]] == "dispatched"

    # 5. SIGTERM (a service manager, or a script that backgrounded it) stops the demo and its children
    hub_pid = int((data / "hub.pid").read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert not _alive(hub_pid), "the hub must not outlive the demo"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
