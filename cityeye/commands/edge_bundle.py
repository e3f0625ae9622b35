"""`cityeye edge pin-hub-key BUNDLE KEY`: add the hub's push-signing key to a bundle enrolled before
pushes existed, so the box can be managed from the hub without re-enrolment.

The key is public, so it is safe to carry by hand, but it must come from the hub out of band
(`cityeye hub keys` on the hub, compared by its fingerprint): the agent never learns it over its link. A key
sent over the link would be trusted only because the link's CURVE key vouches for it, so anyone holding
the hub's CURVE secret (every ingest process has it; a stolen backup of keys/) could hand unpinned boxes a
key of their own and then push them configs. Pinned by hand, as at enrolment, a push needs the signing key.
`cityeye/commands/edge.py` calls `add_commands(edge_subparsers)`.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path
from typing import Any

KEY = re.compile(r"^[0-9a-f]{64}$")


def add_commands(edge_subparsers: Any) -> None:
    pin = edge_subparsers.add_parser(
        "pin-hub-key", help="add the hub's push-signing key to an older bundle (no re-enrolment)",
        description="Bundles enrolled before config pushes carry no hub signing key and refuse every push. Copy "
        "the hub's Ed25519 key from `cityeye hub keys` (on the hub), check the fingerprint printed here against "
        "the one printed there, and restart the agent. A bundle that already holds a different key is left alone "
        "unless --replace (the hub's key was rotated).")
    pin.add_argument("bundle", type=Path, help="the device bundle file (from `cityeye hub enroll`)")
    pin.add_argument("key", help="the hub's Ed25519 public key, 64 hex digits")
    pin.add_argument("--replace", action="store_true", help="replace a different key the bundle already holds")
    pin.set_defaults(func=_pin)


def fingerprint(key_hex: str) -> str:
    """A short form to compare by eye or over the phone: the first 16 hex digits of SHA-256, in groups."""
    digest = hashlib.sha256(bytes.fromhex(key_hex)).hexdigest()[:16]
    return " ".join(digest[i:i + 4] for i in range(0, 16, 4))


def pin_hub_key(path: Path, key: str, *, replace: bool = False) -> bool:
    """Write `key` into the bundle at `path` (0600, atomically); False when it already held it. ValueError
    naming what is wrong: not a key, or a different key pinned (without `replace`)."""
    from protocol.bundle import DeviceBundle

    key = key.strip().lower()
    if not KEY.match(key):
        raise ValueError(f"key: expected the hub's Ed25519 public key as 64 hex digits, got {key[:80]!r}")
    bundle = DeviceBundle.load(path)
    if bundle.hub_sign_public == key:
        return False
    if bundle.hub_sign_public and not replace:
        raise ValueError(f"{path}: hub_sign_public: the bundle already pins a different key "
                         f"({fingerprint(bundle.hub_sign_public)}); use --replace if the hub's key was rotated")
    bundle.model_copy(update={"hub_sign_public": key}).save(path)
    return True


def _pin(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    try:
        changed = pin_hub_key(args.bundle, args.key, replace=args.replace)
    except (ValueError, ValidationError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = "pinned" if changed else "already pinned"
    print(f"{args.bundle}: hub signing key {state}, fingerprint {fingerprint(args.key.strip().lower())}; "
          "restart the agent to accept the hub's pushes")
    return 0
