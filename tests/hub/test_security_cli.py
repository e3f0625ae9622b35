"""`cityeye hub enroll|revoke|verify|keys` against a real store in a tmp data dir."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from delivery_support import make_event, small_jpeg

from cityeye.cli import build_parser
from hub.store import Store
from protocol.bundle import DeviceBundle
from protocol.codec import EventMessage, decode, seal_event
from protocol.manifest import GENESIS_HASH, Signer


def run(data_dir: Path, *argv: str) -> int:
    """Through the real `cityeye` parser, as an operator would type it."""
    args = build_parser().parse_args(["hub", *argv, "--data", str(data_dir)])
    return int(args.func(args))


def ingest_signed(store: Store, bundle: DeviceBundle, n: int) -> str:
    event, media = make_event(bundle.device_id, n, small_jpeg(n))
    sealed = seal_event(event, media, Signer(bundle.sign_secret), seq=n, prev_manifest_sha256=GENESIS_HASH)
    msg = decode(sealed.frames)
    assert isinstance(msg, EventMessage)
    result = store.ingest_event(event, media, manifest=bytes(msg.manifest_bytes),
                                signature=bytes(msg.signature), seq=n)
    assert result.case_id is not None
    return result.case_id


def test_enroll_writes_private_bundle_and_registers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "box.json"
    assert run(tmp_path / "hub", "enroll", "box-1", "--out", str(out), "--endpoint", "tcp://hub:7800") == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "hub" / "keys" / "hub_curve.json").stat().st_mode) == 0o600
    bundle = DeviceBundle.load(out)
    assert bundle.endpoint == "tcp://hub:7800" and bundle.curve_secret != bundle.sign_secret
    assert run(tmp_path / "hub", "keys") == 0
    assert bundle.hub_curve_public in capsys.readouterr().out
    store = Store.open(None, tmp_path / "hub")
    device = store.get_device("box-1")
    store.close()
    assert device is not None and device.sign_public_key == bundle.sign_public and not device.revoked
    assert run(tmp_path / "hub", "enroll", "box-1", "--out", str(out)) == 1  # no silent re-key
    assert run(tmp_path / "hub", "enroll", "box-1", "--out", str(out), "--replace") == 0


def test_revoke(tmp_path: Path) -> None:
    assert run(tmp_path / "hub", "enroll", "box-1", "--out", str(tmp_path / "b.json")) == 0
    assert run(tmp_path / "hub", "revoke", "box-1") == 0
    assert run(tmp_path / "hub", "revoke", "nobody") == 1
    store = Store.open(None, tmp_path / "hub")
    device = store.get_device("box-1")
    store.close()
    assert device is not None and device.revoked


def test_verify_event_and_case_detects_tampered_evidence(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "hub"
    assert run(data, "enroll", "box-1", "--out", str(tmp_path / "b.json")) == 0
    bundle = DeviceBundle.load(tmp_path / "b.json")
    store = Store.open(None, data)
    case_id = ingest_signed(store, bundle, 1)
    assert ingest_signed(store, bundle, 2) == case_id  # same problem: same case
    record = store.get_event("ev-box-1-000001")
    assert record is not None
    evidence = store.evidence_path(record.media[0].sha256)
    store.close()
    assert run(data, "verify", "ev-box-1-000001") == 0
    assert run(data, "verify", case_id) == 0
    assert "2 of 2 event(s) verified" in capsys.readouterr().out
    evidence.write_bytes(b"\xff\xd8 swapped picture")
    assert run(data, "verify", case_id) == 1
    out = capsys.readouterr().out
    assert "FAIL box-1/ev-box-1-000001" in out and "SHA-256 differs from the signed manifest" in out
    assert run(data, "verify", "no-such-thing") == 2


def test_verify_reports_an_unreadable_stored_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "hub"
    assert run(data, "enroll", "box-1", "--out", str(tmp_path / "b.json")) == 0
    store = Store.open(None, data)
    event, media = make_event("box-1", 7, small_jpeg(7))
    store.ingest_event(event, media, manifest=b"not a manifest", signature=b"s" * 64, seq=7)
    store.close()
    assert run(data, "verify", event.event_id) == 1  # reported as a failure, not a crash
    assert "FAIL" in capsys.readouterr().out
