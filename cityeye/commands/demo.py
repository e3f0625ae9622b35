"""`cityeye demo`: the whole loop on real footage with one command.

Starts a hub on the embedded SQLite and an enrolled edge agent (CurveZMQ, signed evidence) that
replays OpenCV's vtest.avi with a no-parking zone over the two parked vehicles; prints the API,
a login token and a live table of cases. The agent is supervised: if it dies it is restarted, and
the hub's dedup keeps its repeated sightings in the same cases. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEVICE_ID = "demo-box"
CAMERA_ID = "vtest-plaza"

# vtest.avi (768x576): a white van and a car stand at the top right for the whole clip.
DEMO_REVIEWER = "reviewer"  # a password account for the web page; its password is new each run
DEMO_CAMERA: dict[str, Any] = {
    "id": CAMERA_ID,
    "timezone": "Asia/Shanghai",
    "start_time": "2026-11-23T10:00:00",  # a weekday morning: the no-parking rule applies all day
    "detect_fps": 2,
    "zones": [
        {"id": "np_top_right", "kind": "no_parking",
         "polygon": [[0.80, 0.03], [1.0, 0.03], [1.0, 0.22], [0.80, 0.22]]},
        # the paved plaza below the tape and cones, where people only pass through
        {"id": "plaza", "kind": "plaza",
         "polygon": [[0.0, 0.38], [0.6, 0.38], [0.75, 0.32], [1.0, 0.5], [1.0, 0.85], [0.45, 0.62], [0.0, 0.45]]},
    ],
    "rules": [
        {"class_id": "illegal_car_parking", "zones": ["np_top_right"], "params": {"min_dwell_s": 30}},
        {"class_id": "begging", "zones": ["plaza"], "params": {"min_dwell_s": 30}},  # a person staying put
    ],
}


# Responsible units the demo's cases can be dispatched to (district squad for the camera, a fallback).
DEMO_HUB_SETTINGS: dict[str, Any] = {
    "units": [
        {"id": "east-squad", "name": "东区城管中队", "cameras": [CAMERA_ID]},
        {"id": "sanitation", "name": "环卫所 Sanitation station"},
    ],
    "default_unit": "east-squad",
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo", help="run hub + edge agent on sample footage and show cases as they open",
        description="Start a hub (embedded SQLite) and an enrolled edge agent replaying OpenCV's vtest.avi "
        "(from ../shared/fixtures, or fetched once from Debian's opencv-doc package) with a no-parking zone "
        "over the parked van and car. A video file plays the camera's main stream; the agent detects on a "
        "384x288 sub-stream made from it, and its evidence shows the main stream. Prints the web page's "
        "address, a reviewer's sign-in and an API token (also written to api.txt, reviewer.txt and token.txt "
        "in the working folder); says when the replay has ended. Ctrl-C stops everything.")
    parser.add_argument("--video", help="another video file or stream URL to replay (default: vtest.avi)")
    parser.add_argument("--data", type=Path, help="working folder (default: a new temporary folder, kept)")
    parser.add_argument("--api", help="API address (default 127.0.0.1:8080, or any free port when 8080 is taken; "
                        "port 0: any)")
    parser.add_argument("--zmq-port", type=int, default=0, help="ingest port (default: any free port)")
    parser.add_argument("--loop", action="store_true", help="replay the video forever")
    parser.add_argument("--camera", type=Path,
                        help="a camera config (YAML: id, timezone, zones, rules, ...) to use instead of the "
                        "vtest one, for another --video; its source is the video")
    parser.add_argument("--exit-when-done", action="store_true",
                        help="stop when the video has played and its evidence is delivered (for scripts)")
    parser.set_defaults(func=_run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api_address(arg: str | None) -> str:
    """--api as given (port 0: a free one); by default 127.0.0.1:8080 unless something else holds it."""
    if arg is None:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 8080))
                return "127.0.0.1:8080"
            except OSError:
                return f"127.0.0.1:{_free_port()}"
    host, _, port = arg.rpartition(":")
    return f"{host or '127.0.0.1'}:{port if port not in ('', '0') else _free_port()}"


@dataclass
class Demo:
    data: Path
    api: str
    zmq_port: int
    video: str
    loop: bool
    camera: dict[str, Any] | None = None  # replaces DEMO_CAMERA (zones and rules of another video)
    token: str = ""
    password: str = ""  # the demo reviewer's, new each run
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    agent_runs: int = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.api}"

    def prepare(self) -> None:
        """Hub database, an admin token, a reviewer account and the device's enrollment bundle; the working
        folder gets api.txt, token.txt and reviewer.txt, so scripts find them (and a second run in the same
        folder overwrites them instead of leaving two)."""
        from hub.app import open_store
        from hub.auth import users
        from hub.auth.tokens import create_token
        from hub.cases.lifecycle import Role
        from hub.devices.enrol import enroll_device
        from hub.settings import HubSettings

        hub_dir = self.data / "hub"
        hub_dir.mkdir(parents=True, exist_ok=True)
        settings = HubSettings(data_dir=hub_dir)
        store = open_store(settings)
        try:
            _, self.token = create_token(store, "demo", Role.ADMIN)
            self.password = secrets.token_urlsafe(9)
            try:
                users.add_user(store, DEMO_REVIEWER, Role.REVIEWER, self.password, settings.accounts)
            except users.UserError:  # a second run in the same folder
                users.set_password(store, DEMO_REVIEWER, self.password, settings.accounts)
            if store.get_device(DEVICE_ID) is None:
                bundle = enroll_device(store, hub_dir, DEVICE_ID, f"tcp://127.0.0.1:{self.zmq_port}")
                bundle.save(self.data / f"{DEVICE_ID}.bundle.json")
        finally:
            store.close()
        (self.data / "token.txt").write_text(self.token + "\n")
        (self.data / "api.txt").write_text(self.base_url + "\n")
        (self.data / "reviewer.txt").write_text(f"{DEMO_REVIEWER} {self.password}\n")
        (self.data / "hub.yaml").write_text(yaml.safe_dump(DEMO_HUB_SETTINGS, sort_keys=False, allow_unicode=True))
        # A camera file with its own detect_source is taken as written; otherwise the agent detects on a
        # sub-stream made here, and reads plates and takes evidence on the video itself (the main stream).
        sub = {} if (self.camera or {}).get("detect_source") else self.sub_stream()
        camera = {**(self.camera or DEMO_CAMERA), "source": self.video, "loop": self.loop, **sub}
        (self.data / "camera.yaml").write_text(yaml.safe_dump(camera, sort_keys=False))

    def sub_stream(self) -> dict[str, str]:
        """A recorded video plays the camera's main stream; the agent detects on a 384x288 sub-stream
        made from it, as a field box does with a camera's analytics stream (evidence stays full size)."""
        from edge_agent.ingest import SourceKind, source_kind

        if source_kind(self.video) != SourceKind.FILE:
            return {}  # a live stream: detect on it
        sub = self.data / "sub-stream.mp4"
        if not sub.exists():
            from edge_agent.substream import make_substream

            make_substream(self.video, sub.with_suffix(".partial.mp4"), 384, 288).replace(sub)
        return {"detect_source": str(sub)}

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.data / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "cityeye", *args], stdout=log, stderr=log,
                                            start_new_session=True)
        (self.data / f"{name}.pid").write_text(f"{self.procs[name].pid}\n")

    def start_hub(self) -> None:
        self._spawn("hub", ["hub", "serve", "--data", str(self.data / "hub"), "--config", str(self.data / "hub.yaml"),
                            "--api", self.api, "--zmq", f"tcp://127.0.0.1:{self.zmq_port}"])

    def start_agent(self) -> None:
        self.agent_runs += 1
        self._spawn("agent", ["edge", "run", "--config", str(self.data / "camera.yaml"),
                              "--bundle", str(self.data / f"{DEVICE_ID}.bundle.json"),
                              "--spool", str(self.data / "spool")])

    def api_get(self, path: str) -> Any:
        request = urllib.request.Request(self.base_url + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def wait_for_api(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.procs["hub"].poll() is not None:
                raise RuntimeError(f"the hub exited (code {self.procs['hub'].returncode}); see {self.data / 'hub.log'}")
            try:
                self.api_get("/health")
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        raise RuntimeError(f"the hub API did not come up within {timeout_s:.0f} s; see {self.data / 'hub.log'}")

    def stop(self) -> None:
        """SIGTERM each child (agent first, so its spool is flushed), then SIGKILL what hangs.

        SIGTERM, not SIGINT: a demo started in the background of a script inherits an ignored SIGINT.
        """
        for name in ("agent", "hub"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _format_cases(cases: list[dict]) -> list[str]:
    lines = [f"  {'case':<20} {'class':<22} {'status':<15} {'zone':<14} {'events':>6}  {'plate':<17} first seen (UTC)"]
    for c in cases:
        lines.append(f"  {c['case_id']:<20} {c['class_id']:<22} {c['status']:<15} {c['zone']!s:<14} "
                     f"{c['event_count']:>6}  {_plate(c):<17} {c['first_seen'][:19]}")
    return lines


def _plate(case: dict) -> str:
    """The case's plate, "plate unreadable" when the edge could not read it, "-" for other classes."""
    plate = case.get("plate")
    if plate is None:
        return "-"
    return plate["text"] or "plate unreadable"


def _banner(demo: Demo) -> None:
    print(f"""
CityEye demo is running (working folder {demo.data})
  web page  : {demo.base_url}/      (also in {demo.data / 'api.txt'})
  sign in   : user {DEMO_REVIEWER}, password {demo.password}      (also in {demo.data / 'reviewer.txt'})
  API docs  : {demo.base_url}/docs
  token     : {demo.token}      (admin, for curl; also in {demo.data / 'token.txt'})
  more users: cityeye hub user add NAME --role reviewer --data {demo.data / 'hub'}
  list cases: curl -H 'Authorization: Bearer {demo.token}' {demo.base_url}/cases
  confirm   : curl -X POST -H 'Authorization: Bearer {demo.token}' -H 'Content-Type: application/json' \\
                   -d '{{}}' {demo.base_url}/cases/CASE_ID/confirm
Replaying {demo.video}; cases open after a vehicle stands 30 s in the no-parking zone. Ctrl-C stops.
""", flush=True)


def _supervise(demo: Demo, exit_when_done: bool) -> None:
    shown: list[str] = []
    started = time.monotonic()
    ended = False
    while True:
        time.sleep(1.0)
        if demo.procs["hub"].poll() is not None:
            raise RuntimeError(f"the hub exited (code {demo.procs['hub'].returncode}); see {demo.data / 'hub.log'}")
        agent = demo.procs["agent"]
        if agent.poll() is not None:
            if agent.returncode == 0 and not demo.loop:
                if exit_when_done:
                    print("video done and delivered", flush=True)
                    return
                if not ended:
                    ended = True
                    print(f"[{time.monotonic() - started:5.0f} s] the replay has ended: the video played to its end "
                          "and every event reached the hub. The hub keeps running for review; Ctrl-C stops it.",
                          flush=True)
            else:
                print(f"agent exited with code {agent.returncode}; restarting it", flush=True)
                demo.start_agent()
        try:
            cases = demo.api_get("/cases?sort=first_seen&limit=50")["items"]
        except (urllib.error.URLError, OSError, KeyError):
            continue
        table = _format_cases(cases)
        if table != shown:
            print(f"[{time.monotonic() - started:5.0f} s] {len(cases)} case(s)", flush=True)
            print("\n".join(table), flush=True)
            shown = table


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both stop the demo and its children (even where SIGINT was inherited ignored)."""

    def interrupt(signum: int, _frame: object) -> None:
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends the demo at once
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def _run(args: argparse.Namespace) -> int:
    from cityeye.samples import SampleError, fetch

    try:
        video = args.video or str(fetch(progress=sys.stderr.isatty()))
    except SampleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    data = args.data or Path(tempfile.mkdtemp(prefix="cityeye-demo-"))
    data.mkdir(parents=True, exist_ok=True)
    camera = None
    if args.camera is not None:
        try:
            camera = yaml.safe_load(args.camera.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            print(f"error: --camera {args.camera}: {exc}", file=sys.stderr)
            return 1
        if not isinstance(camera, dict):
            print(f"error: --camera {args.camera}: want a mapping (id, timezone, zones, rules)", file=sys.stderr)
            return 1
    demo = Demo(data=data, api=_api_address(args.api), zmq_port=args.zmq_port or _free_port(), video=video,
                loop=args.loop, camera=camera)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    _stop_on_signals()
    try:
        demo.prepare()
        demo.start_hub()
        demo.wait_for_api()
        demo.start_agent()
        _banner(demo)
        _supervise(demo, args.exit_when_done)
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.stop()
    return 0
