"""`cityeye hub enroll|revoke|verify|keys` against a real store in a tmp data dir."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cityeye.cli import build_parser
from hub.storage.store import Store
from protocol.bundle import DeviceBundle
from protocol.codec import EventMessage, decode, seal_event
from protocol.manifest import GENESIS_HASH, Signer
from tests.delivery_support import make_event, small_jpeg


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


def _first_key(data_dir: str) -> str:
    from hub.devices.hubkeys import HubSigningKey

    return HubSigningKey.load_or_create(Path(data_dir)).public


def test_hub_keys_made_at_once_by_several_processes_are_one_key(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """API, ingest workers and a CLI may all start on a new data dir: every one must sign with the key on disk."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(4) as pool:
        keys = pool.map(_first_key, [str(tmp_path / "hub")] * 8)
    assert len(set(keys)) == 1
    path = tmp_path / "hub" / "keys" / "hub_sign.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["hub_sign.json"]  # no temp files left behind
    assert run(tmp_path / "hub", "keys") == 0
    assert f"hub evidence-package signing key (Ed25519, hex): {keys[0]}" in capsys.readouterr().out


@pytest.mark.parametrize("content, expected", [
    ("not json", "not a hub key file"),
    ('{"public": "ab"}', "not a hub key file: expected an object with string fields 'public' and 'secret'"),
    ('{"public": "ab", "secret": "zz"}', "'secret' is not an Ed25519 seed in hex"),
    ('{"public": "ab", "secret": "' + "11" * 32 + '"}', "'public' is not the public key of 'secret'"),
])
def test_a_broken_hub_key_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                        expected: str) -> None:
    path = tmp_path / "hub" / "keys" / "hub_sign.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert run(tmp_path / "hub", "keys") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and expected in err
