"""`cityeye edge run` as a real process on a short cut of vtest.avi: into a folder until the file ends,
stopped by SIGINT mid-run (clean exit, no half-written events), and through a bundle to a real hub."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from edge_agent.evidence import sha256_hex
from edge_agent.sinks import read_folder_events
from tests.delivery_support import free_port
from tests.shared_data import vtest_clip

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CLIP_S = 10.0
PLAZA = [[0.0, 0.38], [0.6, 0.38], [0.75, 0.32], [1.0, 0.5], [1.0, 0.85], [0.45, 0.62], [0.0, 0.45]]


@pytest.fixture(scope="module")
def short_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first CLIP_S seconds of vtest.avi (pedestrians crossing the plaza)."""
    return vtest_clip(tmp_path_factory.mktemp("video"), CLIP_S)


def write_config(tmp: Path, video: Path, **extra: object) -> Path:
    cfg = {"id": "plaza-cam", "source": str(video), "timezone": "Asia/Shanghai", "detect_fps": 2,
           "evidence": {"pre_s": 2, "post_s": 2},
           "zones": [{"id": "plaza", "kind": "plaza", "polygon": PLAZA}],
           "rules": [{"id": "loiter2", "class_id": "begging", "zones": ["plaza"], "params": {"min_dwell_s": 2}}],
           **extra}
    path = tmp / "cam.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def edge_run(*args: str | Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "cityeye", "edge", "run", *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen[str], timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"edge run did not stop within {timeout} s:\n{out[-3000:]}") from None
    return out


def assert_complete_folder(out: Path) -> int:
    """Every event folder is whole (event.json + media matching their hashes); none is half-written."""
    assert not [p.name for p in out.iterdir() if p.name.endswith(".partial")]
    events = read_folder_events(out)
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert sorted(e.event_id for e in events) == folders
    for e in events:
        assert json.loads((out / e.event_id / "event.json").read_text())["event_id"] == e.event_id
        for ref in e.media:
            assert sha256_hex((out / e.event_id / ref.name).read_bytes()) == ref.sha256
    return len(events)


def test_run_into_a_folder_stops_at_the_end_of_the_file(tmp_path: Path, short_video: Path) -> None:
    out = tmp_path / "events"
    started = time.monotonic()
    proc = edge_run("--config", write_config(tmp_path, short_video), "--out", out, "--device-id", "box-e2e")
    log = finish(proc, timeout=CLIP_S + 40)
    wall = time.monotonic() - started
    assert proc.returncode == 0, log[-3000:]
    assert wall >= CLIP_S  # a file source plays at real speed
    assert "camera plaza-cam: file " in log and "zones: plaza(polygon); rules: loiter2[begging]" in log
    assert "active classes: begging" in log
    assert assert_complete_folder(out) >= 1
    events = read_folder_events(out)
    assert {e.device_id for e in events} == {"box-e2e"} and {e.camera_id for e in events} == {"plaza-cam"}
    assert any(e.state.value == "opened" and any(m.name == "clip.mp4" for m in e.media) for e in events)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_stops_cleanly(tmp_path: Path, short_video: Path, sig: signal.Signals) -> None:
    out = tmp_path / "events"
    proc = edge_run("--config", write_config(tmp_path, short_video, loop=True), "--out", out)
    deadline = time.monotonic() + 40
    while not (out / "events.jsonl").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "a looping source must keep the agent running"
    assert (out / "events.jsonl").exists(), "no event within 40 s"
    time.sleep(1.0)  # likely mid-way through another event's post-roll
    sent = time.monotonic()
    proc.send_signal(sig)
    log = finish(proc, timeout=20)
    assert proc.returncode in (0, 130), log[-3000:]
    assert time.monotonic() - sent < 10
    assert "stopping (finishing pending evidence)" in log
    assert "Traceback" not in log
    assert assert_complete_folder(out) >= 1


def test_run_with_a_bundle_delivers_to_the_hub(tmp_path: Path, short_video: Path) -> None:
    from hub.devices.enrol import enroll_device
    from hub.ingest.config import IngestConfig
    from hub.ingest.loop import run_ingest
    from hub.storage import schema
    from hub.storage.store import Store

    data_dir = tmp_path / "hub"
    store = Store.open(None, data_dir)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    stop = threading.Event()
    run_ingest(IngestConfig(bind=endpoint, data_dir=data_dir, device_refresh_s=0.2), store, stop)
    try:
        bundle_path = tmp_path / "box-hub.bundle.json"
        enroll_device(store, data_dir, "box-hub", endpoint).save(bundle_path)
        spool = tmp_path / "spool"
        proc = edge_run("--config", write_config(tmp_path, short_video), "--bundle", bundle_path, "--spool", spool,
                        "--drain-s", "15")
        log = finish(proc, timeout=CLIP_S + 60)
        assert proc.returncode == 0, log[-3000:]
        assert "events go to hub " + endpoint in log and "all delivered" in log
        with store.engine.connect() as conn:
            e = schema.events
            rows = conn.execute(select(e.c.event_id, e.c.device_id, e.c.payload)).all()
            cams = conn.execute(select(schema.cameras.c.camera_id, schema.cameras.c.device_id)).all()
        assert rows and {r.device_id for r in rows} == {"box-hub"}
        assert {r.payload["device_id"] for r in rows} == {"box-hub"}
        assert [(c.camera_id, c.device_id) for c in cams] == [("plaza-cam", "box-hub")]  # from heartbeats
        assert "0 event(s) left in the spool" in log
    finally:
        stop.set()
        time.sleep(0.3)
        store.close()


def test_replay_no_clips_gives_stills_only(tmp_path: Path, short_video: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from cityeye.cli import main

    out = tmp_path / "events"
    assert main(["edge", "replay", str(short_video), "--config", str(write_config(tmp_path, short_video)),
                 "--out", str(out), "--no-clips"]) == 0
    events = read_folder_events(out)
    assert events and all(m.kind.value != "clip" for e in events for m in e.media)
    assert f"{len(events)} events;" in capsys.readouterr().out
