"""`cityeye edge pin-hub-key`: a bundle enrolled before config pushes refuses the hub's signed pushes; with
the hub's key pinned by hand (taken from `cityeye hub keys`, fingerprints compared) it accepts them, and a
different key is never swapped in silently."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cityeye.cli import build_parser
from cityeye.commands.edge_bundle import fingerprint
from hub.devices.enrol import enroll_device
from hub.devices.hubkeys import HubSigningKey
from hub.storage.store import Store
from protocol.bundle import DeviceBundle
from protocol.push import Push, PushKind, PushRefused, open_push, sign_push


def cli(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return int(args.func(args))


def signed_push(hub_data: Path) -> tuple[bytes, bytes]:
    push = Push(device_id="box-old", kind=PushKind.CAMERA_CONFIG, target="cam-1", version=1,
                issued_at=datetime.now(UTC), issued_by="admin:chief", body={"id": "cam-1"})
    return sign_push(push, HubSigningKey.load_or_create(hub_data))


def test_an_old_bundle_takes_pushes_once_the_hubs_key_is_pinned(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    hub_data = tmp_path / "hub"
    store = Store.open(None, hub_data)
    try:
        bundle = enroll_device(store, hub_data, "box-old", "tcp://127.0.0.1:7755")
    finally:
        store.close()
    path = tmp_path / "box-old.bundle.json"
    bundle.model_copy(update={"hub_sign_public": None}).save(path)  # as enrolled before pushes existed
    payload, signature = signed_push(hub_data)
    with pytest.raises(PushRefused, match="no hub signing key"):
        open_push(payload, signature, DeviceBundle.load(path).hub_sign_public, "box-old")

    assert cli("hub", "keys", "--data", str(hub_data)) == 0
    shown = capsys.readouterr().out
    key = shown.split("signing key (Ed25519, hex): ")[1].split()[0]
    assert cli("edge", "pin-hub-key", str(path), key.upper()) == 0
    out = capsys.readouterr().out
    assert fingerprint(key) in shown and fingerprint(key) in out  # the operator compares these two
    assert open_push(payload, signature, DeviceBundle.load(path).hub_sign_public, "box-old").version == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it still holds the device's secrets
    assert DeviceBundle.load(path).curve_secret == bundle.curve_secret

    assert cli("edge", "pin-hub-key", str(path), key) == 0 and "already pinned" in capsys.readouterr().out
    other = "ab" * 32
    assert cli("edge", "pin-hub-key", str(path), other) == 2
    assert "already pins a different key" in capsys.readouterr().err
    assert DeviceBundle.load(path).hub_sign_public == key
    assert cli("edge", "pin-hub-key", str(path), "not-a-key") == 2
    assert "key: expected the hub's Ed25519 public key" in capsys.readouterr().err
    assert cli("edge", "pin-hub-key", str(path), other, "--replace") == 0  # the hub's key was rotated
    assert DeviceBundle.load(path).hub_sign_public == other
