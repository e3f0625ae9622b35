"""Evidence packages: built from a real store (SQLite and PostgreSQL), fetched over the API, written and
checked by the CLI, and verified offline; tampered and hostile ZIPs get a specific verdict, never a traceback."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import VerifyKey

from cityeye.cli import main as cli_main
from hub.devices.hubkeys import HubSigningKey
from hub.evidence.package import build_package
from hub.storage.store import Store
from protocol.codec import EventMessage, decode, seal_event
from protocol.key_history import iso
from protocol.manifest import GENESIS_HASH, Signer, generate_signing_key
from protocol.package import VerifyLimits, verify_package
from tests.delivery_support import make_event, small_jpeg
from tests.hub.package_support import rewrite

Headers = dict[str, dict[str, str]]
DEVICE = "box-1"
EV1, EV2 = f"ev-{DEVICE}-000001", f"ev-{DEVICE}-000002"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HUB_SIGNATURE_BROKEN = ("package.json.ed25519: the hub's signature of package.json does not verify with its "
                        "hub_sign_public_key: package.json or the signature changed after export")


def ingest_signed(store: Store, signer: Signer, seqs: range) -> str:
    """Seal events the way the agent does, decode them the way ingest does, store them; the case id."""
    prev, case_ids = GENESIS_HASH, set()
    for n in seqs:
        event, media = make_event(DEVICE, n, small_jpeg(n))
        sealed = seal_event(event, media, signer, seq=n, prev_manifest_sha256=prev)
        msg = decode(sealed.frames)
        assert isinstance(msg, EventMessage)
        result = store.ingest_event(msg.event, {k: bytes(v) for k, v in msg.media.items()},
                                    manifest=bytes(msg.manifest_bytes), signature=bytes(msg.signature), seq=n)
        case_ids.add(result.case_id)
        prev = sealed.manifest_sha256
    assert len(case_ids) == 1 and None not in case_ids
    return str(case_ids.pop())


def enrol(store: Store) -> Signer:
    secret, public = generate_signing_key()
    store.add_device(DEVICE, "curve-key", public)
    return Signer(secret)


def handle_with_photo(client: Any, tokens: Headers, case_id: str) -> str:
    """Confirm, dispatch, start and handle the case with an "after" photo, through the API; the photo's hash."""
    for role, action in (("reviewer", "confirm"), ("dispatcher", "dispatch"), ("handler", "start")):
        assert client.post(f"/cases/{case_id}/{action}", json={}, headers=tokens[role]).status_code == 200
    up = client.post("/evidence", files={"file": ("after.jpg", small_jpeg(99), "image/jpeg")},
                     headers=tokens["handler"])
    assert up.status_code == 201, up.text
    photo = up.json()["sha256"]
    done = client.post(f"/cases/{case_id}/handle", json={"note": "bike moved", "photo_sha256": photo},
                       headers=tokens["handler"])
    assert done.status_code == 200, done.text
    return photo


@pytest.fixture
def signed_case(store: Store, client: Any, tokens: Headers) -> tuple[str, str, Signer]:
    """(case id, handler photo SHA-256, the device's signer): two signed events of box-1, then a handled case."""
    signer = enrol(store)
    case_id = ingest_signed(store, signer, range(1, 3))
    return case_id, handle_with_photo(client, tokens, case_id), signer


def flip(name: str, at: int = -10) -> Callable[[str, bytes], bytes]:
    def change(n: str, b: bytes) -> bytes:
        if n != name:
            return b
        raw = bytearray(b)
        raw[at] ^= 0x01
        return bytes(raw)

    return change


def event_check(report: Any, event_id: str) -> Any:
    return next(c for c in report.events if f"/{event_id} " in c.label)


# ---- a good package ---------------------------------------------------------------------------------------


def test_package_of_a_signed_case_verifies(client: Any, store: Store, tokens: Headers,
                                           signed_case: tuple[str, str, Signer]) -> None:
    case_id, photo, signer = signed_case
    resp = client.get(f"/cases/{case_id}/evidence-package", headers=tokens["reader"])
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/zip"
    assert resp.headers["content-disposition"] == f'attachment; filename="{case_id}-evidence.zip"'

    report = verify_package(resp.content)
    assert report.ok, report.lines()
    assert report.case_id == case_id and report.exported_by == "reader:reader-1"
    assert [c.ok for c in report.events] == [True, True] and len(report.photos) == 1
    assert "chained to seq 1" in event_check(report, EV2).notes
    assert report.keys == {DEVICE: signer.public_hex}
    assert report.lines()[-1] == "VERIFIED (2 event(s), 1 unsigned photo(s))"
    hub_key = HubSigningKey.load_or_create(store.data_dir).public
    assert report.hub_signed and report.hub_key == hub_key
    assert "OK   package: package.json is signed by the hub key below" in report.lines()
    assert f"key  hub: Ed25519 {hub_key} (compare with the hub key the bureau publishes)" in report.lines()
    required = verify_package(resp.content, hub_keys=[hub_key.upper()])
    assert required.ok and f"key  hub: Ed25519 {hub_key} (the required hub key)" in required.lines()

    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        names = zf.namelist()
        case = json.loads(zf.read("case.json"))
        raw_index, signature = zf.read("package.json"), zf.read("package.json.ed25519")
        index = json.loads(raw_index)
        devices = json.loads(zf.read("devices.json"))
        stored = store.get_event(EV1)
        assert stored is not None
        assert zf.read(f"events/{EV1}/manifest.json") == stored.manifest  # the exact signed bytes
        assert zf.read(f"events/{EV1}/signature.ed25519") == stored.signature
        assert zf.read(f"events/{EV1}/snapshot.jpg") == small_jpeg(1)
        assert zf.read(f"photos/{photo}.jpg") == small_jpeg(99)
    per_event = ["manifest.json", "signature.ed25519", "event.json", "snapshot.jpg"]
    assert names == ["README.txt", "case.json", "devices.json",
                     *[f"events/{e}/{f}" for e in (EV1, EV2) for f in per_event],
                     f"photos/{photo}.jpg", "package.json", "package.json.ed25519"]
    assert set(index["files"]) == set(names) - {"package.json", "package.json.ed25519"}
    assert index["hub_sign_public_key"] == hub_key
    VerifyKey(bytes.fromhex(hub_key)).verify(raw_index, signature)  # raises unless the hub signed these bytes
    assert index["photos"] == [{"path": f"photos/{photo}.jpg", "sha256": photo, "size": len(small_jpeg(99)),
                                "signed": False, "uses": [index["photos"][0]["uses"][0]]}]
    assert index["photos"][0]["uses"][0].startswith("timeline: handle by handler:handler-1")
    assert "no device signature" in index["trust"]["unsigned"]
    (key,) = store.device_keys(DEVICE)
    assert devices == {DEVICE: {"keys": [{"sign_public_key": signer.public_hex, "valid_from": iso(key.valid_from),
                                          "valid_until": None, "ended": None}],
                                "revoked": False, "revoked_at": None}}
    assert index["version"] == 3 and [e["received_at"] for e in index["events"]] == [
        iso(stored.received_at), iso(store.get_event(EV2).received_at)]  # type: ignore[union-attr]
    # time, place and camera travel with the evidence
    assert case["case_id"] == case_id and case["class_id"] == "illegal_parking" and case["camera_id"] == "cam1"
    assert case["status"] == "handled" and case["first_seen"].startswith("2026-01-01T00:00:01")
    assert [e["path"] for e in case["events"]] == [f"events/{EV1}/", f"events/{EV2}/"]
    assert [t["action"] for t in case["timeline"]] == ["open", "confirm", "dispatch", "start", "handle"]
    assert case["timeline"][-1]["photo"] == f"photos/{photo}.jpg"
    assert "allowed_actions" not in case
    # deterministic: the same case at the same export time gives the same bytes
    assert build_package(store, case_id, now=NOW) == build_package(store, case_id, now=NOW)


def test_a_reported_problem_packages_its_photo_as_unsigned(client: Any, tokens: Headers) -> None:
    up = client.post("/evidence", files={"file": ("report.jpg", small_jpeg(5), "image/jpeg")},
                     headers=tokens["reviewer"])
    body = {"class_id": "illegal_car_parking", "lat": 31.2304, "lon": 121.4736, "description": "blocks the gate",
            "photo_sha256": [up.json()["sha256"]]}
    case_id = client.post("/intake/report", json=body, headers=tokens["reviewer"]).json()["case_id"]
    resp = client.get(f"/cases/{case_id}/evidence-package", headers=tokens["reviewer"])
    report = verify_package(resp.content)
    assert report.ok and not report.events and len(report.photos) == 1, report.lines()
    assert "manual report" in report.photos[0].label and "unsigned" in report.photos[0].label
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        case = json.loads(zf.read("case.json"))
    assert case["events"][0]["report"]["description"] == "blocks the gate"
    assert case["events"][0]["media"][0]["path"] == f"photos/{up.json()['sha256']}.jpg"


def test_the_package_says_what_the_hub_could_not_give(store: Store) -> None:
    signer = enrol(store)
    case_id = ingest_signed(store, signer, range(1, 3))
    lost = store.get_event(EV2)
    assert lost is not None
    store.evidence_path(lost.media[0].sha256).unlink()  # a disk lost the file after ingest
    store.revoke_device(DEVICE)
    report = verify_package(build_package(store, case_id))
    assert report.errors == [f"missing at export: events/{EV2}/snapshot.jpg: not in the hub's evidence store "
                             f"(sha256 {lost.media[0].sha256})"]
    assert event_check(report, EV2).problems == ["media 'snapshot.jpg' is missing"]
    assert event_check(report, EV1).ok and event_check(report, EV1).notes[0].startswith(
        f"device {DEVICE} was revoked 20")


# ---- tampering: each reported as what it is ------------------------------------------------------------------


@pytest.fixture
def package(store: Store, signed_case: tuple[str, str, Signer]) -> bytes:
    return build_package(store, signed_case[0], now=NOW)


def test_a_changed_jpeg_is_reported_by_the_index_and_by_the_manifest(package: bytes) -> None:
    member = f"events/{EV1}/snapshot.jpg"
    report = verify_package(rewrite(package, flip(member)))
    assert not report.ok
    assert report.errors == [f"{member}: SHA-256 differs from package.json"]
    assert event_check(report, EV1).problems == ["media 'snapshot.jpg' SHA-256 differs from the manifest"]
    assert event_check(report, EV2).ok and report.photos[0].ok
    # A tamperer who also rewrites package.json is caught by the hub's signature and the device's manifest.
    report = verify_package(rewrite(package, flip(member), reindex=True))
    assert report.errors == [HUB_SIGNATURE_BROKEN]
    assert event_check(report, EV1).problems == ["media 'snapshot.jpg' SHA-256 differs from the manifest"]
    assert report.lines()[-1].startswith("NOT VERIFIED: 2 problem(s)")


def test_a_changed_manifest_fails_its_signature_and_the_chain(package: bytes) -> None:
    def later(name: str, b: bytes) -> bytes:  # still a valid manifest: the capture time moved by one second
        return b.replace(b'"captured_at":"2026-01-01T00:00:01Z"', b'"captured_at":"2026-01-01T00:00:02Z"') \
            if name == f"events/{EV1}/manifest.json" else b

    report = verify_package(rewrite(package, later, reindex=True))
    assert event_check(report, EV1).problems == [
        "signature.ed25519: manifest signature does not verify with the device's key"]
    assert event_check(report, EV2).problems == [
        f"hash chain broken: prev_manifest_sha256 is not the SHA-256 of the manifest of seq 1 ({EV1})"]
    broken = verify_package(rewrite(package, flip(f"events/{EV1}/manifest.json", at=5), reindex=True))
    assert event_check(broken, EV1).problems[0].startswith("manifest.json: manifest is not valid")


def test_a_changed_signature_or_metadata_is_reported(package: bytes) -> None:
    report = verify_package(rewrite(package, flip(f"events/{EV2}/signature.ed25519", at=0), reindex=True))
    assert event_check(report, EV2).problems == [
        "signature.ed25519: manifest signature does not verify with the device's key"]
    assert event_check(report, EV1).ok

    def moved(name: str, b: bytes) -> bytes:
        return b.replace(b'"camera_id":"cam1"', b'"camera_id":"cam2"') if name == f"events/{EV2}/event.json" else b

    report = verify_package(rewrite(package, moved, reindex=True))
    assert event_check(report, EV2).problems == ["metadata SHA-256 differs from the manifest"]


def test_a_swapped_device_key_fails_every_signature(package: bytes) -> None:
    _, other = generate_signing_key()

    def swap(name: str, b: bytes) -> bytes:
        if name != "devices.json":
            return b
        devices = json.loads(b)
        devices[DEVICE]["keys"][0]["sign_public_key"] = other
        return json.dumps(devices).encode()

    report = verify_package(rewrite(package, swap))
    assert report.errors == ["devices.json: SHA-256 differs from package.json"]
    for event_id in (EV1, EV2):
        assert event_check(report, event_id).problems == [
            "signature.ed25519: manifest signature does not verify with the device's key"]
    assert report.keys == {DEVICE: other}  # printed, for the officer to compare with the registry


def test_a_byte_flipped_in_the_zip_itself_names_the_damaged_file(package: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        info = zf.getinfo(f"events/{EV2}/snapshot.jpg")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # stored: the JPEG bytes as they are
    raw = bytearray(package)
    raw[start + 100] ^= 0xFF
    report = verify_package(bytes(raw))
    assert any(e.startswith(f"events/{EV2}/snapshot.jpg: damaged in the ZIP (Bad CRC-32") for e in report.errors)
    assert event_check(report, EV2).problems[0].startswith(f"events/{EV2}/snapshot.jpg: damaged in the ZIP")


def test_missing_members_are_named(package: bytes) -> None:
    gone = f"events/{EV1}/signature.ed25519"
    report = verify_package(rewrite(package, lambda n, b: None if n == gone else b))
    assert report.errors == [f"{gone} is listed in package.json but missing from the ZIP"]
    assert event_check(report, EV1).problems == [f"signature.ed25519: {gone} is missing from the package"]
    report = verify_package(rewrite(package, lambda n, b: None if n == f"events/{EV2}/snapshot.jpg" else b))
    assert event_check(report, EV2).problems == ["media 'snapshot.jpg' is missing"]
    report = verify_package(rewrite(package, lambda n, b: None if n == "package.json" else b))
    assert report.errors == ["package.json is missing from the package: not a CityEye evidence package"]
    report = verify_package(rewrite(package, lambda n, b: b"extra" if n == "README.txt" else b) + b"")
    assert report.errors == ["README.txt: SHA-256 differs from package.json"]


def test_an_event_dropped_from_the_index_is_reported(package: bytes) -> None:
    def drop(name: str, b: bytes) -> bytes:
        if name != "package.json":
            return b
        index = json.loads(b)
        index["events"] = [e for e in index["events"] if e["event_id"] != EV2]
        return json.dumps(index).encode()

    report = verify_package(rewrite(package, drop))
    files = ("event.json", "manifest.json", "signature.ed25519", "snapshot.jpg")
    assert report.errors == [HUB_SIGNATURE_BROKEN, *(f"events/{EV2}/{f} belongs to no event or photo listed in "
                                                     "package.json" for f in files)]
    assert [c.ok for c in report.events] == [True]


# ---- the hub's signature: what no device signs -------------------------------------------------------------


def reopened(name: str, b: bytes) -> bytes:
    """case.json as if the case had never been handled: no device signature covers the hub's record."""
    if name != "case.json":
        return b
    assert b'"status": "handled"' in b
    return b.replace(b'"status": "handled"', b'"status": "confirmed"')


def resign(data: bytes, change: Callable[[str, bytes], bytes | None], key: HubSigningKey) -> bytes:
    """A forger's package: `change`d, re-hashed, and package.json signed with the forger's own key."""
    changed = rewrite(data, change, reindex=True)
    with zipfile.ZipFile(io.BytesIO(changed)) as zf:
        index = json.loads(zf.read("package.json"))
    index["hub_sign_public_key"] = key.public
    raw = json.dumps(index).encode()
    signed = {"package.json": raw, "package.json.ed25519": key.sign(raw)}
    return rewrite(changed, lambda n, b: signed.get(n, b))


def test_the_hubs_own_records_are_covered_by_its_signature(package: bytes) -> None:
    report = verify_package(rewrite(package, reopened, reindex=True))
    assert report.errors == [HUB_SIGNATURE_BROKEN]
    assert all(c.ok for c in (*report.events, *report.photos))  # only the hub's signature sees this change
    assert not report.hub_signed and "OK   package: package.json is signed by the hub key below" not in report.lines()


def test_a_package_re_signed_with_another_key_fails_against_the_hubs_key(store: Store, package: bytes,
                                                                          tmp_path: Path) -> None:
    hub_key = HubSigningKey.load_or_create(store.data_dir).public
    forger = HubSigningKey.load_or_create(tmp_path)
    assert forger.public != hub_key
    forged = resign(package, reopened, forger)
    alone = verify_package(forged)  # consistent in itself: the officer must compare the key it prints
    assert alone.ok and alone.hub_key == forger.public
    assert f"key  hub: Ed25519 {forger.public} (compare with the hub key the bureau publishes)" in alone.lines()
    required = verify_package(forged, hub_keys=[hub_key])
    assert required.errors == [f"signed by hub key {forger.public}, not by the required {hub_key}: not exported by "
                               "that hub, or re-signed by someone else"]
    assert verify_package(package, hub_keys=[forger.public, hub_key]).ok  # several hubs: any of them


def test_a_removed_or_damaged_hub_signature_fails(package: bytes) -> None:
    stripped = verify_package(rewrite(package, lambda n, b: None if n == "package.json.ed25519" else b))
    assert stripped.errors == ["package.json.ed25519 is missing: package.json is not signed by the hub it names"]

    def unnamed(name: str, b: bytes) -> bytes | None:
        if name == "package.json.ed25519":
            return None
        if name != "package.json":
            return b
        index = json.loads(b)
        del index["hub_sign_public_key"]
        return json.dumps(index).encode()

    report = verify_package(rewrite(package, unnamed))
    assert report.errors == ["package.json names no hub key (hub_sign_public_key): a version 3 package is signed by "
                             "the hub that exported it"]
    for bad in (b"short", bytes(64)):
        damaged = rewrite(package, lambda n, b, bad=bad: bad if n == "package.json.ed25519" else b)
        assert verify_package(damaged).errors == [HUB_SIGNATURE_BROKEN]
        with zipfile.ZipFile(io.BytesIO(package)) as zf:
            named = json.loads(zf.read("package.json"))["hub_sign_public_key"]
        required = verify_package(damaged, hub_keys=[named])  # the right key named: the signature still decides
        assert required.errors == [HUB_SIGNATURE_BROKEN] and not required.ok
        assert f"key  hub: Ed25519 {named} (compare with the hub key the bureau publishes)" in required.lines()


# ---- hostile input: a clear error, never a traceback, nothing written ------------------------------------------


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return out.getvalue()


@pytest.mark.parametrize("name", ["../../etc/cron.d/evil", "/etc/passwd", "events/../../x", "events\\..\\x",
                                  "C:/evil.txt", ".hidden", "events/ev/\u202eexe.jpg"])
def test_traversal_and_odd_names_are_refused(name: str, package: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    report = verify_package(zip_of({**members, name: b"x"}))
    assert not report.ok and len(report.errors) == 1
    assert report.errors[0].startswith(f"unsafe member name {name!r}")


@pytest.mark.parametrize(("data", "expected"), [
    (b"", "not a readable ZIP file (0 bytes): File is not a zip file"),
    (b"%PDF-1.7 not a zip at all", "not a readable ZIP file (25 bytes): File is not a zip file"),
    (b"PK\x05\x06" + b"\x00" * 18, "package.json is missing from the package: not a CityEye evidence package"),
])
def test_non_zip_input_gives_a_clear_error(data: bytes, expected: str) -> None:
    report = verify_package(data)
    assert report.errors == [expected] and not report.ok
    assert report.lines()[-1] == "NOT VERIFIED: 1 problem(s) (0 event(s), 0 unsigned photo(s))"


def test_a_zip_bomb_is_refused_before_it_is_inflated() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("case.json", b"\0" * (8 * 1024**2))  # 8 MB of zeros in about 8 KB
    bomb = out.getvalue()
    assert len(bomb) < 64 * 1024
    report = verify_package(bomb, VerifyLimits(max_member_bytes=1024**2))
    assert report.errors == ["member 'case.json' declares 8388608 bytes, over the limit of 1048576"]
    many = zip_of({f"f{i}": b"" for i in range(30)})
    assert verify_package(many, VerifyLimits(max_members=20)).errors == [
        "the ZIP has 30 members, over the limit of 20"]
    # A central directory that claims 4 GB for a tiny member, against the default limits.
    raw = bytearray(zip_of({"case.json": b"{}"}))
    cd = raw.index(b"PK\x01\x02")
    raw[cd + 24:cd + 28] = struct.pack("<I", 0xFFFFFFF0)
    assert verify_package(bytes(raw)).errors == [
        f"member 'case.json' declares {0xFFFFFFF0} bytes, over the limit of {VerifyLimits().max_member_bytes}"]


def test_duplicate_and_encrypted_members_are_refused(package: bytes) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("package.json", b"{}")
        zf.writestr("package.json", b"{}")
    assert verify_package(out.getvalue()).errors == ["member 'package.json' appears twice in the ZIP"]
    raw = bytearray(zip_of({"package.json": b"{}"}))
    cd = raw.index(b"PK\x01\x02")
    raw[cd + 8] |= 0x01  # the "encrypted" flag bit
    assert verify_package(bytes(raw)).errors == ["member 'package.json' is encrypted"]


def test_an_invalid_index_is_reported_not_raised() -> None:
    assert verify_package(zip_of({"package.json": b"[" * 100_000})).errors[0].startswith("package.json is not valid")
    wrong = {"format": "something-else", "version": 1}
    assert verify_package(zip_of({"package.json": json.dumps(wrong).encode()})).errors == [
        "package.json is not valid: format: Input should be 'cityeye-evidence-package'"]


def test_random_damage_never_raises(package: bytes) -> None:
    step = max(1, len(package) // 400)
    verdicts = []
    for at in range(0, len(package), step):
        raw = bytearray(package)
        raw[at] ^= 0x5A
        report = verify_package(bytes(raw))
        report.lines()
        verdicts.append(report.ok)
    assert verdicts.count(False) > 0.8 * len(verdicts)  # the rest hit bytes nothing depends on (ZIP dates)
    assert verify_package(package[: len(package) // 2]).errors[0].startswith("not a readable ZIP file")


# ---- API ----------------------------------------------------------------------------------------------


def test_api_roles_unknown_case_and_size_limit(client: Any, tokens: Headers, signed_case: tuple[str, str, Signer],
                                               hub_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    case_id = signed_case[0]
    path = f"/cases/{case_id}/evidence-package"
    for role in ("admin", "reviewer", "dispatcher", "handler", "reader"):
        assert client.get(path, headers=tokens[role]).status_code == 200, role
    assert client.get(path, headers=tokens["sensor"]).status_code == 403
    assert client.get(path).status_code == 401
    missing = client.get("/cases/C20260101-NOPE/evidence-package", headers=tokens["reader"])
    assert missing.status_code == 404 and missing.json()["detail"] == "no case 'C20260101-NOPE'"
    monkeypatch.setattr(hub_settings, "evidence_package_max_mb", 0.001)  # the app reads it per request
    big = client.get(path, headers=tokens["reader"])
    assert big.status_code == 413
    assert big.json()["detail"].startswith(f"the evidence package of case {case_id} would be ")
    assert "over the limit of 1048 bytes" in big.json()["detail"]


# ---- CLI ----------------------------------------------------------------------------------------------


def test_cli_export_and_offline_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "hub"
    store = Store.open(None, data)
    signer = enrol(store)
    case_id = ingest_signed(store, signer, range(1, 4))
    store.close()
    out = tmp_path / "pkg.zip"
    assert cli_main(["hub", "export-evidence", case_id, "--out", str(out), "--data", str(data)]) == 0
    said = capsys.readouterr().out
    assert f"wrote {out}: {out.stat().st_size} bytes, 3 event(s), 0 unsigned photo(s)" in said
    assert "it verifies" in said
    assert cli_main(["evidence", "verify", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"OK   event {DEVICE}/{EV1} seq 1" in printed
    assert printed.rstrip().endswith("\nVERIFIED (3 event(s), 0 unsigned photo(s))")
    assert signer.public_hex in printed

    # The hub's key, as `hub keys` prints it for the bureau to publish, is what --hub-key requires.
    assert cli_main(["hub", "keys", "--data", str(data)]) == 0
    hub_key = capsys.readouterr().out.split("hub evidence-package signing key (Ed25519, hex): ")[1].strip()
    assert hub_key == HubSigningKey.load_or_create(data).public
    assert cli_main(["evidence", "verify", str(out), "--hub-key", hub_key]) == 0
    assert f"key  hub: Ed25519 {hub_key} (the required hub key)" in capsys.readouterr().out
    other = HubSigningKey.load_or_create(tmp_path / "elsewhere").public
    assert cli_main(["evidence", "verify", str(out), "--hub-key", other]) == 1
    assert f"FAIL package: signed by hub key {hub_key}, not by the required {other}" in capsys.readouterr().out
    assert cli_main(["evidence", "verify", str(out), "--hub-key", "abc"]) == 2
    assert "error: --hub-key 'abc' is not an Ed25519 public key (64 hex digits" in capsys.readouterr().err

    assert cli_main(["hub", "export-evidence", "C20990101-NONE", "--out", str(out), "--data", str(data)]) == 2
    assert "error: no case 'C20990101-NONE'" in capsys.readouterr().err
    assert cli_main(["hub", "export-evidence", case_id, "--out", str(tmp_path / "x.zip"), "--max-mb", "0.001",
                     "--data", str(data)]) == 1
    assert "over the limit of 1048 bytes" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()
    assert cli_main(["hub", "export-evidence", case_id, "--out", str(tmp_path / "no" / "dir.zip"),
                     "--data", str(data)]) == 1
    assert f"error: cannot write {tmp_path / 'no' / 'dir.zip'}" in capsys.readouterr().err

    tampered = tmp_path / "tampered.zip"
    tampered.write_bytes(rewrite(out.read_bytes(), flip(f"events/{EV2}/snapshot.jpg"), reindex=True))
    assert cli_main(["evidence", "verify", str(tampered)]) == 1
    printed = capsys.readouterr().out
    assert f"FAIL event {DEVICE}/{EV2} seq 2" in printed
    assert "media 'snapshot.jpg' SHA-256 differs from the manifest" in printed
    assert cli_main(["evidence", "verify", str(tmp_path / "nothing.zip")]) == 2


def test_cli_verify_as_a_process_on_hostile_files(tmp_path: Path) -> None:
    cases = {"notzip.zip": (b"hello", 1, "not a readable ZIP file"),
             "evil.zip": (zip_of({"../../evil.sh": b"rm -rf /"}), 1, "unsafe member name '../../evil.sh'")}
    for name, (content, code, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        done = subprocess.run([sys.executable, "-m", "cityeye", "evidence", "verify", name], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == code, done.stderr
        assert message in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(cases)  # nothing extracted
    assert not (tmp_path.parent / "evil.sh").exists()
