"""`cityeye hub models ...`: the model registry from the hub's shell (what the /models API does).

register FILE, rollout RELEASE --canary CAM[,CAM], judge ROLLOUT, rollback ROLLOUT --reason ..., list, stats.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

Action = Callable[[Any, argparse.Namespace], str]  # (store, args) -> what to print


def add_commands(hub_sub: Any) -> None:
    from cityeye.commands.hub import db_args

    models = hub_sub.add_parser("models", help="model registry: register, roll out, roll back, stats")
    sub = models.add_subparsers(dest="models_command", required=True, metavar="MODELS_COMMAND")
    commands: list[tuple[str, str, Action, list[tuple[tuple[str, ...], dict[str, Any]]]]] = [
        ("register", "register a model file (few-shot head .json or detector .onnx), signed by the hub", _register,
         [(("file",), {"type": Path}), (("--name",), {"required": True, "help": "the name events report"}),
          (("--metrics",), {"type": Path, "help": "evaluation figures (JSON file)"})]),
        ("deploy", "run a release on cameras at once (a first release; an operator's choice)", _deploy,
         [(("release",), {"type": int}), (("--cameras",), {"required": True, "help": "comma-separated camera ids"})]),
        ("rollout", "run a release on canary cameras first", _rollout,
         [(("release",), {"type": int}), (("--canary",), {"required": True, "help": "comma-separated camera ids"}),
          (("--void-margin",), {"type": float, "default": 0.10, "help": "roll back when voids are worse by this"}),
          (("--detect-margin",), {"type": float, "default": 0.30, "help": "... or detect time by this share"}),
          (("--min-reviewed",), {"type": int, "default": 20, "help": "reviewed canary cases before judging"}),
          (("--min-hours",), {"type": float, "default": 24.0, "help": "hours in service before promotion"})]),
        ("judge", "judge a canary now: promote, roll back or wait", _judge, [(("rollout",), {"type": int})]),
        ("rollback", "put every camera a rollout moved back on the release it replaced", _rollback,
         [(("rollout",), {"type": int}), (("--reason",), {"required": True})]),
        ("list", "releases and which cameras run them", _list, []),
        ("stats", "precision per class per model version", _stats, []),
    ]
    for name, help_text, action, arguments in commands:
        p = sub.add_parser(name, help=help_text, description=help_text)
        for flags, options in arguments:
            p.add_argument(*flags, **options)
        db_args(p)
        p.set_defaults(func=lambda args, action=action: _run(action, args))


def _run(action: Action, args: argparse.Namespace) -> int:
    """Open the hub's store, run `action`, print its answer; a refused request is an error naming why."""
    from cityeye.commands.hub import settings_from_args
    from hub.app import open_store
    from hub.releases.registry import ReleaseError

    store = open_store(settings_from_args(args))
    try:
        print(action(store, args))
    except (LookupError, ReleaseError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0


def _check_loadable(path: Path) -> None:
    """An agent loads a downloaded .onnx from the file alone: its metadata must say how (a manifest)."""
    from models.cache import resolve
    from models.manifest import ManifestError

    try:
        resolve(path)
    except ManifestError as exc:
        raise ValueError(f"{path}: agents could not load it ({exc}); write it with `cityeye models package "
                         "MODEL --name NAME --out FILE.onnx`, which embeds the manifest") from exc


def _register(store: Any, args: argparse.Namespace) -> str:
    from hub.devices.hubkeys import HubSigningKey
    from hub.releases import registry
    from models.fewshot import load_model

    if not args.file.is_file():
        raise ValueError(f"{args.file} does not exist")
    kinds: dict[str, Literal["fewshot", "onnx"]] = {".json": "fewshot", ".onnx": "onnx"}
    if args.file.suffix not in kinds:
        raise ValueError(f"{args.file}: expected a few-shot head (.json) or an ONNX detector (.onnx)")
    kind = kinds[args.file.suffix]
    backbone = load_model(args.file).backbone.sha256 if kind == "fewshot" else None
    if kind == "onnx":
        _check_loadable(args.file)
    metrics = json.loads(args.metrics.read_text()) if args.metrics else {}
    release = registry.register(store, args.file.read_bytes(), name=args.name, kind=kind, actor="cli",
                                key=HubSigningKey.load_or_create(store.data_dir), metrics=metrics,
                                backbone_sha256=backbone)
    return f"release {release.release_id}: {release.name} ({release.kind}, sha256 {release.sha256})"


def _deploy(store: Any, args: argparse.Namespace) -> str:
    from hub.releases import registry

    cameras = [c for c in args.cameras.split(",") if c]
    registry.deploy(store, args.release, cameras, "cli")
    return f"release {args.release} deployed to {', '.join(cameras)}"


def _rollout(store: Any, args: argparse.Namespace) -> str:
    from hub.releases import registry
    from hub.releases.rollout import RolloutPolicy

    policy = RolloutPolicy(void_margin=args.void_margin, detect_margin=args.detect_margin,
                           min_reviewed=args.min_reviewed, min_hours=args.min_hours)
    started = registry.start_rollout(store, args.release, [c for c in args.canary.split(",") if c], "cli",
                                     policy=policy)
    return (f"rollout {started.rollout_id}: release {started.release_id} on canary {', '.join(started.canary)}; "
            f"{len(started.rest)} camera(s) follow on promotion")


def _judge(store: Any, args: argparse.Namespace) -> str:
    from hub.releases import registry

    judged = registry.judge(store, args.rollout, actor="cli")
    return f"{judged.verdict.value}: {judged.reason}"


def _rollback(store: Any, args: argparse.Namespace) -> str:
    from hub.releases import registry

    done = registry.rollback(store, args.rollout, "cli", args.reason)
    moved = registry.audit_rows(store, done.rollout_id)[-1]["cameras"]
    return f"rollout {done.rollout_id} rolled back: {len(moved)} camera(s) back on release {done.previous_release_id}"


def _list(store: Any, args: argparse.Namespace) -> str:
    from hub.releases import registry

    running = registry.assignments(store)
    lines = []
    for r in sorted(registry.by_sha256(store).values(), key=lambda r: r.release_id):
        cameras = sorted(c for c, rid in running.items() if rid == r.release_id)
        shown = ", ".join(cameras) or "-"
        lines.append(f"{r.release_id:>4}  {r.name:<24} {r.kind:<8} {r.sha256[:12]}  cameras: {shown}")
    return "\n".join(lines) or "no releases"


def _stats(store: Any, args: argparse.Namespace) -> str:
    from hub.releases import registry

    lines = [f"{'release':<24}{'class':<28}{'reviewed':>9}{'void':>6}{'precision':>10}"]
    for row in registry.stats(store):
        name = f"{row['name'] or row['sha256'][:12]}#{row['release_id'] or '?'}"
        precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        lines.append(f"{name:<24}{row['class_id']:<28}{row['reviewed']:>9}{row['void']:>6}{precision:>10}")
    return "\n".join(lines)
