"""`cityeye hub models ...`: the model registry from the hub's shell (what the /models API does).

register FILE, rollout RELEASE --canary CAM[,CAM], judge ROLLOUT, rollback ROLLOUT --reason ..., list, stats.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_commands(hub_sub: Any) -> None:
    from cityeye.commands.hub import db_args

    models = hub_sub.add_parser("models", help="model registry: register, roll out, roll back, stats")
    sub = models.add_subparsers(dest="models_command", required=True, metavar="MODELS_COMMAND")

    p = sub.add_parser("register", help="register a model file (few-shot head .json or detector .onnx), signed")
    p.add_argument("file", type=Path)
    p.add_argument("--name", required=True, help="the name events report")
    p.add_argument("--metrics", type=Path, help="evaluation figures (JSON file)")
    db_args(p)
    p.set_defaults(func=_register)

    p = sub.add_parser("rollout", help="run a release on canary cameras first")
    p.add_argument("release", type=int)
    p.add_argument("--canary", required=True, help="comma-separated camera ids")
    p.add_argument("--void-margin", type=float, default=0.10, help="roll back when the void rate is worse by this")
    p.add_argument("--detect-margin", type=float, default=0.30,
                   help="roll back when detect time is worse by this share")
    p.add_argument("--min-reviewed", type=int, default=20, help="reviewed canary cases before judging voids")
    p.add_argument("--min-hours", type=float, default=24.0, help="hours in service before promotion")
    db_args(p)
    p.set_defaults(func=_rollout)

    p = sub.add_parser("judge", help="judge a canary now: promote, roll back or wait")
    p.add_argument("rollout", type=int)
    db_args(p)
    p.set_defaults(func=_judge)

    p = sub.add_parser("rollback", help="put every camera a rollout moved back on the release it replaced")
    p.add_argument("rollout", type=int)
    p.add_argument("--reason", required=True)
    db_args(p)
    p.set_defaults(func=_rollback)

    p = sub.add_parser("list", help="releases and which cameras run them")
    db_args(p)
    p.set_defaults(func=_list)

    p = sub.add_parser("stats", help="precision per class per model version")
    db_args(p)
    p.set_defaults(func=_stats)


def _store(args: argparse.Namespace) -> Any:
    from cityeye.commands.hub import settings_from_args
    from hub.app import open_store

    return open_store(settings_from_args(args))


def _err(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _register(args: argparse.Namespace) -> int:
    from hub.devices.hubkeys import HubSigningKey
    from hub.releases import registry

    if not args.file.is_file():
        return _err(f"{args.file} does not exist")
    kind = "fewshot" if args.file.suffix == ".json" else "onnx" if args.file.suffix == ".onnx" else None
    if kind is None:
        return _err(f"{args.file}: expected a few-shot head (.json) or an ONNX detector (.onnx)")
    metrics = json.loads(args.metrics.read_text()) if args.metrics else {}
    backbone = None
    if kind == "fewshot":
        from models.fewshot import FewShotError, load_model

        try:
            backbone = load_model(args.file).backbone.sha256
        except FewShotError as exc:
            return _err(str(exc))
    store = _store(args)
    try:
        release = registry.register(store, args.file.read_bytes(), name=args.name, kind=kind, actor="cli",
                                    key=HubSigningKey.load_or_create(store.data_dir), metrics=metrics,
                                    backbone_sha256=backbone)
    except registry.ReleaseError as exc:
        return _err(str(exc))
    finally:
        store.close()
    print(f"release {release.release_id}: {release.name} ({release.kind}, sha256 {release.sha256})")
    return 0


def _rollout(args: argparse.Namespace) -> int:
    from hub.releases import registry
    from hub.releases.rollout import RolloutPolicy

    policy = RolloutPolicy(void_margin=args.void_margin, detect_margin=args.detect_margin,
                           min_reviewed=args.min_reviewed, min_hours=args.min_hours)
    store = _store(args)
    try:
        started = registry.start_rollout(store, args.release, [c for c in args.canary.split(",") if c], "cli",
                                         policy=policy)
    except (LookupError, registry.ReleaseError) as exc:
        return _err(str(exc))
    finally:
        store.close()
    print(f"rollout {started.rollout_id}: release {started.release_id} on canary {', '.join(started.canary)}; "
          f"{len(started.rest)} camera(s) follow on promotion")
    return 0


def _judge(args: argparse.Namespace) -> int:
    from hub.releases import registry

    store = _store(args)
    try:
        judged = registry.judge(store, args.rollout, actor="cli")
    except LookupError as exc:
        return _err(str(exc))
    finally:
        store.close()
    print(f"{judged.verdict.value}: {judged.reason}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from hub.releases import registry

    store = _store(args)
    try:
        done = registry.rollback(store, args.rollout, "cli", args.reason)
    except (LookupError, registry.ReleaseError) as exc:
        return _err(str(exc))
    finally:
        store.close()
    print(f"rollout {done.rollout_id} rolled back: {len(done.canary) + len(done.rest)} camera(s) on release "
          f"{done.previous_release_id}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from hub.releases import registry

    store = _store(args)
    try:
        releases = sorted(registry.by_sha256(store).values(), key=lambda r: r.release_id)
        running = registry.assignments(store)
    finally:
        store.close()
    for r in releases:
        cameras = sorted(c for c, rid in running.items() if rid == r.release_id)
        print(f"{r.release_id:>4}  {r.name:<24} {r.kind:<8} {r.sha256[:12]}  cameras: {', '.join(cameras) or '-'}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from hub.releases import registry

    store = _store(args)
    try:
        rows = registry.stats(store)
    finally:
        store.close()
    print(f"{'release':<24}{'class':<28}{'reviewed':>9}{'void':>6}{'precision':>10}")
    for row in rows:
        name = f"{row['name'] or row['sha256'][:12]}#{row['release_id'] or '?'}"
        precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        print(f"{name:<24}{row['class_id']:<28}{row['reviewed']:>9}{row['void']:>6}{precision:>10}")
    return 0
