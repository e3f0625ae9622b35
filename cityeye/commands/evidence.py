"""`cityeye evidence verify FILE`: check an evidence package offline (protocol.package).

Needs no hub and no database: an officer runs it on the ZIP alone. Exit 0 only when everything verifies,
1 when something doesn't, 2 when the file can't be read.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

_HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")


def register(subparsers: Any) -> None:
    evidence = subparsers.add_parser("evidence", help="evidence packages: verify one offline")
    evidence_sub = evidence.add_subparsers(dest="evidence_command", required=True, metavar="EVIDENCE_COMMAND")
    verify = evidence_sub.add_parser(
        "verify", help="check an evidence package (ZIP) offline; exit 0 only when everything verifies",
        description="Checks, without a hub or network: the SHA-256 of every file against package.json, each "
        "event's device signature with the key in devices.json, that each event's metadata and media are the "
        "signed ones, and the hash chain between consecutive events of a device. Prints one line per event "
        "and photo, and the device keys to compare with the bureau's registry; checks the hub's signature of "
        "package.json, and with --hub-key that the bureau's hub made it. Exit 0: verified; 1: not; 2: the file "
        "can't be read or a --hub-key is not a key.")
    verify.add_argument("file", type=Path, help="the evidence package, e.g. C20261123-1A2B3C4D-evidence.zip")
    verify.add_argument("--hub-key", action="append", default=[], metavar="KEY",
                        help="the Ed25519 key (64 hex digits) of the hub the bureau publishes (`cityeye hub keys`): "
                        "the package must be signed with it; repeat for several hubs")
    verify.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    from protocol.package import VerifyLimits, verify_package

    limits = VerifyLimits()
    for key in args.hub_key:
        if not _HEX_KEY.match(key):
            print(f"error: --hub-key {key!r} is not an Ed25519 public key (64 hex digits, as `cityeye hub keys` "
                  "prints it)", file=sys.stderr)
            return 2
    try:
        size = args.file.stat().st_size
        if size > limits.max_total_bytes:
            print(f"error: {args.file} is {size} bytes, over the {limits.max_total_bytes} a package may have",
                  file=sys.stderr)
            return 2
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    report = verify_package(data, limits, hub_keys=args.hub_key)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1
