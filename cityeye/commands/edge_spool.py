"""`cityeye edge spool DIR`: what waits for the hub, what the hub refused (and why), what was evicted.

`cityeye/commands/edge.py` calls `add_commands(edge_subparsers)`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def add_commands(edge_subparsers: Any) -> None:
    spool = edge_subparsers.add_parser("spool", help="show the delivery spool: pending, dead letters, evictions")
    spool.add_argument("spool_dir", type=Path, help="the outbox spool_dir")
    spool.add_argument("--all", action="store_true", help="list every pending event, not only counts")
    spool.set_defaults(func=_show)


def _when(ts: Any) -> str:
    return datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="seconds") if ts else "?"


def _show(args: argparse.Namespace) -> int:
    from edge_agent.spool import inspect_spool

    if not (args.spool_dir / "outbox").is_dir():
        print(f"error: {args.spool_dir} is not a spool (no outbox/ folder)")
        return 2
    report = inspect_spool(args.spool_dir)
    print(f"device {report.device_id or '?'}: {len(report.pending)} event(s) waiting for an ACK "
          f"({report.pending_bytes / 1e6:.1f} MB)")
    if args.all:
        for e in report.pending:
            print(f"  seq {e.seq:>8}  {e.state.value:<8} {e.event_id}  {e.size} bytes")
    print(f"{len(report.dead)} dead letter(s) (refused by the hub; never resent):")
    for d in report.dead:
        print(f"  seq {d.entry.seq:>8}  {d.entry.event_id}  at {_when(d.at)}: {d.reason}")
    print(f"{len(report.evictions)} eviction(s) by the disk quota:")
    for ev in report.evictions[-20:]:
        print(f"  seq {ev['seq']:>8}  {ev['state']:<8} {ev['event_id']}  at {_when(ev['at'])}: {ev['reason']}")
    return 0
