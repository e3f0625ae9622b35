"""`cityeye edge ...`: run the edge agent on cameras, replay a video through it, check a camera config."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("cityeye.edge")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "edge", help="run the edge agent: cameras -> detector -> rules -> problem events",
        description="The edge agent watches camera video (motion gate, detector, tracker, zone rules with "
        "schedules) and turns problems into events with evidence (stills, crop, clip).")
    esub = parser.add_subparsers(dest="edge_command", required=True, metavar="ACTION")

    p = esub.add_parser(
        "run", help="watch cameras until Ctrl-C (or until file sources end)",
        description="Read each camera (rtsp/http/file/device) on its own thread, newest frame only, reconnecting "
        "with backoff. With --bundle, events go to the delivery outbox (durable spool, then the hub over "
        "CurveZMQ; heartbeats carry camera health); without it, as JSON + media into --out. A file source "
        "plays at real speed and ends the run at its end unless its config says `loop: true`. Ctrl-C or "
        "SIGTERM stops cleanly: events waiting for their clip are completed with what was recorded and "
        "handed over before exit.")
    p.add_argument("--config", "-c", type=Path, action="append", required=True,
                   help="camera YAML file; repeat for several cameras (they share one detector, batched)")
    p.add_argument("--bundle", type=Path,
                   help="device bundle from `cityeye hub enroll`: deliver events to its hub (device id = the "
                   "bundle's)")
    p.add_argument("--spool", type=Path,
                   help="delivery spool folder (with --bundle; default "
                   "$XDG_DATA_HOME/cityeye/spool/<device id>, i.e. ~/.local/share/cityeye/spool/<device id>)")
    p.add_argument("--insecure", action="store_true",
                   help="with --bundle: plain TCP without CURVE, for a lab hub started with --insecure")
    p.add_argument("--local-config", action="store_true",
                   help="with --bundle: this box is managed locally: it runs its YAML files and refuses the "
                   "hub's config pushes (default: the hub may set zones, rules and schedules; the video source "
                   "always stays in the YAML)")
    p.add_argument("--hub-config-dir", type=Path,
                   help="with --bundle: where the last good config from the hub is kept per camera (default "
                   "$XDG_DATA_HOME/cityeye/hub-config/<device id>); it replaces the YAML's settings at start")
    p.add_argument("--hub-url",
                   help="with --bundle: the hub's HTTP(S) API, where detector models announced in model pushes "
                   "are downloaded with the device's key (default: the bundle's api_url)")
    p.add_argument("--hub-ca", type=Path, metavar="PEM",
                   help="with --bundle: the bureau CA that signs the hub's HTTPS certificate (default: the "
                   "bundle's api_ca, else the system's trust store)")
    p.add_argument("--drain-s", type=float, default=5.0,
                   help="with --bundle: at stop, wait up to this long for the hub to ACK what is spooled "
                   "(the rest stays in the spool for the next run; default 5)")
    p.add_argument("--out", type=Path, default=Path("edge-events"),
                   help="without --bundle: folder for events (default edge-events)")
    p.add_argument("--device-id", help="without --bundle: this box's id in the events (default: host name)")
    p.add_argument("--metrics-port", type=int, default=0,
                   help="serve Prometheus metrics on ADDR:PORT/metrics (default off)")
    p.add_argument("--metrics-addr", default="127.0.0.1", help="address for the metrics endpoint")
    p.set_defaults(func=_run)

    p = esub.add_parser(
        "replay", help="replay a video file through one camera's pipeline",
        description="Deterministic replay, as fast as the detector goes (no real-time waits): frames are "
        "sampled at the camera's detect_fps and stamped start_time + position, so rules and schedules behave as "
        "on the day. Prints a summary table.")
    p.add_argument("video", type=Path, help="video file (any format OpenCV/FFmpeg reads)")
    p.add_argument("--config", "-c", type=Path, required=True, help="camera YAML file (its `source` is ignored)")
    p.add_argument("--out", type=Path, required=True, help="folder for events: <event_id>/event.json + media")
    p.add_argument("--no-clips", action="store_true",
                   help="events carry stills only, no clip (replays never wait for real time anyway; encoding "
                   "clips is what costs most when many events fire)")
    p.add_argument("--no-gating", action="store_true", help="disable motion gating for this replay")
    p.add_argument("--device-id", default="replay", help="device id written into the events (default replay)")
    p.set_defaults(func=_replay)

    p = esub.add_parser("check-config", help="validate camera config files and exit",
                        description="Validate each file: prints file:line: field: problem for every error, "
                        "and the active zones and rules when it is valid. Exit code 1 if any file is invalid.")
    p.add_argument("configs", type=Path, nargs="+", help="camera YAML files")
    p.add_argument("--bundle", type=Path, help="also check the device bundle: its fields, the hub's API address "
                   "and the CA it trusts for the hub's HTTPS (api_ca)")
    p.add_argument("--hub-ca", type=Path, metavar="PEM", help="with --bundle: the CA file `edge run --hub-ca` gets")
    p.set_defaults(func=_check)

    from cityeye.commands import edge_bundle, edge_spool  # delivery's own actions (spool, bundle)

    edge_spool.add_commands(esub)
    edge_bundle.add_commands(esub)


def _load(paths: list[Path]) -> Any:  # list of edge_agent.config.CameraConfig
    from edge_agent.config import ConfigError, load_camera_config

    configs, failed = [], False
    for path in paths:
        try:
            configs.append(load_camera_config(path))
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            failed = True
    return configs, failed


def _check(args: argparse.Namespace) -> int:
    configs, failed = _load(args.configs)
    for cfg in configs:
        zones = ", ".join(z.id for z in cfg.zones) or "none"
        rules = ", ".join(r.rule_id for r in cfg.rules) or "none"
        print(f"{cfg.id}: ok (source {cfg.source}, {cfg.detect_fps:g} detect fps, zones: {zones}; rules: {rules})")
        if cfg.calibration is not None:
            print(f"  ground calibration {cfg.calibration.fit().summary()} at the 1920x1080 reference size")
    if args.bundle is not None:
        failed = not _check_bundle(args.bundle, args.hub_ca) or failed
    elif args.hub_ca is not None:
        print("--hub-ca only applies with --bundle", file=sys.stderr)
        failed = True
    return 1 if failed else 0


def _check_bundle(path: Path, hub_ca: Path | None) -> bool:
    """Print what the bundle connects to, or each problem as `file: field: problem`; True when usable."""
    from pydantic import ValidationError

    from protocol.bundle import DeviceBundle, trust_context

    try:
        bundle = DeviceBundle.load(path)
    except ValidationError as exc:
        for e in exc.errors():
            print(f"{path}: {'.'.join(map(str, e['loc']))}: {e['msg']}", file=sys.stderr)
        return False
    except (OSError, ValueError) as exc:
        print(f"{path}: not a usable device bundle: {exc}", file=sys.stderr)
        return False
    try:
        trust_context(hub_ca.read_text(encoding="utf-8") if hub_ca else bundle.api_ca)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"--hub-ca {hub_ca}: {exc}", file=sys.stderr)
        return False
    trust = f"CA {hub_ca}" if hub_ca else "the bundle's CA (api_ca)" if bundle.api_ca else "the system's trust store"
    print(f"{path}: ok (device {bundle.device_id}, ingest {bundle.endpoint}, hub API {bundle.api_url or 'none'}, "
          f"HTTPS trusts {trust})")
    return True


def _detector(configs: Any) -> Any:  # a detector (edge_agent.fewshot.load_detector)
    from edge_agent.fewshot import load_detector
    from edge_agent.pipeline import detection_floor

    models = {c.model for c in configs}
    if len(models) > 1:
        raise SystemExit(f"all cameras of one agent must use the same model for batching, got {sorted(models)}")
    sessions, threads = detector_layout(configs)
    log.info("detector: %d session(s) x %s intra-op thread(s)", sessions, threads or "all cores")
    # a name, an .onnx or a few-shot head (.json)
    native = any(c.detect_input == "native" for c in configs)
    return load_detector(models.pop(), threads=threads, sessions=sessions, native_input=native,
                         floor=detection_floor(configs))[0]


def detector_layout(configs: Any) -> tuple[int, int | None]:
    """The agent's detector sessions and threads per session: the most any camera asks for."""
    from edge_agent.detect import detector_layout as layout

    return layout(max((c.detector_sessions or 0) for c in configs) or None,
                  max((c.detector_threads or 0) for c in configs) or None)


def default_spool_dir(device_id: str, kind: str = "spool") -> Path:
    """Per-device folder under the user's data dir (XDG): one box may host agents for several devices."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cityeye" / kind / device_id


def _run(args: argparse.Namespace) -> int:
    configs, failed = _load(args.config)
    if failed:
        return 1
    from cityeye import __version__
    from edge_agent.metrics import EdgeMetrics, serve_prometheus
    from edge_agent.pipeline import Pipeline, detection_floor, model_info

    metrics = EdgeMetrics()
    outbox = managed = models = retakes = None
    detector = _detector(configs)
    if args.bundle is not None:
        from edge_agent.change.retake_push import ReferenceRetakes
        from edge_agent.deliver import Outbox, OutboxConfig
        from edge_agent.managed_config import ManagedConfigs
        from edge_agent.model_push import ModelPushes, PushRouter
        from protocol.bundle import DeviceBundle
        from protocol.push import PushKind

        try:
            bundle = DeviceBundle.load(args.bundle)
        except (OSError, ValueError) as exc:
            print(f"{args.bundle}: not a usable device bundle: {exc}", file=sys.stderr)
            return 1
        if args.device_id and args.device_id != bundle.device_id:
            print(f"--device-id {args.device_id} differs from the bundle's device id {bundle.device_id}; "
                  "the hub only accepts the enrolled id", file=sys.stderr)
            return 1
        device_id = bundle.device_id
        spool = args.spool or default_spool_dir(device_id)
        managed = ManagedConfigs(configs, args.hub_config_dir or default_spool_dir(device_id, "hub-config"),
                                 device_id=device_id, hub_sign_public=bundle.hub_sign_public,
                                 managed=not args.local_config)
        configs = managed.configs()
        model_dir = default_spool_dir(device_id, "hub-model")
        api_url = args.hub_url or bundle.api_url
        fetcher = None
        if api_url:
            from edge_agent.model_fetch import ModelFetcher
            from protocol.bundle import trust_context
            from protocol.manifest import Signer

            try:
                ca_pem = args.hub_ca.read_text(encoding="utf-8") if args.hub_ca else bundle.api_ca
                trust_context(ca_pem)
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                print(f"--hub-ca {args.hub_ca}: {exc}" if args.hub_ca else f"{args.bundle}: api_ca: {exc}",
                      file=sys.stderr)
                return 1
            try:
                fetcher = ModelFetcher(api_url, device_id, Signer(bundle.sign_secret), model_dir / "releases",
                                       ca_pem=ca_pem)
            except ValueError as exc:
                print(f"--hub-url: {exc}", file=sys.stderr)
                return 1
        models = ModelPushes(model_dir, device_id=device_id, hub_sign_public=bundle.hub_sign_public,
                             threads=detector_layout(configs)[1], sessions=detector_layout(configs)[0],
                             fetcher=fetcher, floor=detection_floor(configs))
        detector = models.kept_detector() or detector  # the model the hub last set wins over the YAML's
        retakes = ReferenceRetakes(device_id=device_id, hub_sign_public=bundle.hub_sign_public)
        outbox = Outbox(bundle, OutboxConfig(spool_dir=spool, insecure=args.insecure), health=metrics.health,
                        agent_version=__version__, model=model_info(detector),
                        pushes=PushRouter({PushKind.CAMERA_CONFIG: managed, PushKind.MODEL: models,
                                           PushKind.CHANGE_REFERENCE: retakes}))
        metrics.delivery = outbox.metrics
        sink: Outbox | FolderSink = outbox
        where = f"hub {bundle.endpoint} via spool {spool}"
    else:
        from edge_agent.sinks import FolderSink

        if args.insecure or args.spool or args.local_config or args.hub_config_dir or args.hub_url or args.hub_ca:
            print("--insecure, --spool, --local-config, --hub-config-dir, --hub-url and --hub-ca only apply with "
                  "--bundle",
                  file=sys.stderr)
            return 1
        device_id, sink, where = args.device_id, FolderSink(args.out), f"folder {args.out}"
    pipeline = Pipeline(configs, detector, sink, device_id=device_id, metrics=metrics)
    if managed is not None:
        managed.attach(pipeline.reconfigure, metrics)
    if retakes is not None:
        retakes.attach(pipeline.retake_reference, pipeline.change_cameras)
    if outbox is not None and models is not None:
        def swap(new_detector: Any) -> None:
            pipeline.swap_detector(new_detector)
            outbox.model = model_info(new_detector)

        models.attach(swap)
    if outbox is not None:
        outbox.snapshots = pipeline.snapshot
    server = serve_prometheus(metrics, args.metrics_port, args.metrics_addr) if args.metrics_port else None
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():  # a second Ctrl-C: the user insists
            raise KeyboardInterrupt
        log.info("%s: stopping (finishing pending evidence)", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    log.info("edge agent %s running with %d camera(s) as device %s; events go to %s; Ctrl-C stops",
             __version__, len(configs), pipeline.device_id, where)
    if outbox is not None:
        outbox.start()
    try:
        pipeline.run_live(stop)  # flushes pending evidence into the sink before returning
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]  # serve_prometheus returns the http.server it started
        if outbox is not None:
            drained = outbox.wait_drained(args.drain_s)
            outbox.stop()
            left = outbox.spool.stats()
            log.info("outbox: %s; %d event(s) left in the spool %s for the next run", "all delivered" if drained
                     else "not all ACKed", left.events, outbox.config.spool_dir)
    for health in metrics.health():
        log.info("camera %s: %s", health.camera_id, health.model_dump(exclude={"camera_id"}))
    return 0


def _replay(args: argparse.Namespace) -> int:
    configs, failed = _load([args.config])
    if failed:
        return 1
    cfg = configs[0]
    if not args.video.is_file():
        print(f"{args.video}: no such video file", file=sys.stderr)
        return 1
    if args.no_gating or args.no_clips:
        data = cfg.model_dump()
        if args.no_gating:
            data["motion"]["enabled"] = False
        if args.no_clips:
            data["evidence"]["clip"] = False
        cfg = type(cfg).model_validate(data)
    from tqdm import tqdm

    from edge_agent.ingest import FileReplay
    from edge_agent.pipeline import replay
    from edge_agent.sinks import FolderSink

    total = FileReplay(cfg.id, args.video, sample_fps=cfg.sample_fps()).expected_samples()
    sink = FolderSink(args.out)
    with tqdm(total=total, unit="frame", desc=f"replay {args.video.name}") as bar:
        result = replay(cfg, str(args.video), _detector([cfg]), sink, device_id=args.device_id,
                        on_frame=lambda _f: _tick(bar))
    print(_summary(result, sink.events))
    return 0


def _summary(result: Any, events: Any) -> str:
    start = result.camera.start_epoch() or (events[0].first_seen.timestamp() if events else 0.0)
    rows = [("state", "class", "zone", "labels", "first seen", "fired at", "dwell s", "media", "event id")]
    for e in events:
        rows.append((e.state.value, e.class_id, e.zone or "-", "+".join(sorted(set(e.labels))) or "-",
                     f"{e.first_seen.timestamp() - start:6.1f}s", f"{e.observed_at.timestamp() - start:6.1f}s",
                     f"{e.dwell_s:.1f}", str(len(e.media)), e.event_id[:12]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    speed = result.video_s / result.wall_s if result.wall_s else 0.0
    saved = result.gate_skipped
    lines.append(f"{len(events)} events; {result.frames} frames sampled, {result.detect_frames} detected, "
                 f"{saved} spared by motion gating; {result.video_s:.1f} s of video in {result.wall_s:.1f} s "
                 f"({speed:.1f}x real time)")
    return "\n".join(lines)


def _tick(bar: Any, n: int = 1) -> None:
    """Advance a tqdm bar (its update returns a value the callbacks must not)."""
    bar.update(n)
