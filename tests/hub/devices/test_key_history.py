"""Key history: a device re-enrolled with new keys (`--replace`) keeps its old evidence verifiable.

On a real store (SQLite and PostgreSQL): enrol, store signed events, re-enrol, store more; `hub verify`
and the offline evidence package check each event with the key in force when the hub received it. Also
the migration that back-fills the history of a schema-2 database, the version 1 package format, and
one run through real CURVE ingest.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, update

from hub.devices.enrol import enroll_device
from hub.devices.hubkeys import HubSigningKey
from hub.devices.verify import verify_event
from hub.evidence.package import build_package
from hub.ingest.burst import IngestItem, IngestResult
from hub.storage import db, migrations, schema
from hub.storage.store import Store
from protocol.codec import EventMessage, decode, seal_event
from protocol.key_history import KEY_HANDOVER_S, KeyPeriod, check_signature
from protocol.manifest import GENESIS_HASH, Signer, generate_signing_key
from protocol.package import verify_package
from tests.delivery_support import make_event, small_jpeg
from tests.hub.package_support import rewrite

DEVICE = "box-1"


def ev(n: int) -> str:
    return f"ev-{DEVICE}-{n:06d}"


class Box:
    """A camera box as the hub sees it: its signer (replaced on re-enrolment) and its hash chain."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.prev = GENESIS_HASH
        self.signer = self.enrol()

    def enrol(self, *, replace: bool = False) -> Signer:
        secret, public = generate_signing_key()
        self.store.add_device(DEVICE, f"curve-{public[:8]}", public, replace=replace)
        self.signer = Signer(secret)
        return self.signer

    def send(self, n: int, signer: Signer | None = None) -> str:
        """Seal event n the way the agent does, decode it the way ingest does, store it; its case id."""
        event, media = make_event(DEVICE, n, small_jpeg(n))
        sealed = seal_event(event, media, signer or self.signer, seq=n, prev_manifest_sha256=self.prev)
        msg = decode(sealed.frames)
        assert isinstance(msg, EventMessage)
        (result,) = self.store.ingest_events([IngestItem(
            msg.event, {k: bytes(v) for k, v in msg.media.items()}, bytes(msg.manifest_bytes), bytes(msg.signature),
            seq=n, metadata=bytes(msg.metadata))])
        self.prev = sealed.manifest_sha256
        assert isinstance(result, IngestResult) and result.case_id is not None
        return result.case_id


def shift_key(store: Store, sign_public_key: str, by: timedelta) -> None:
    """Move a key's period (a test's way to put an event outside it)."""
    k = schema.device_keys
    with db.begin_write(store.engine) as conn:
        row = conn.execute(select(k).where(k.c.sign_public_key == sign_public_key)).one()
        conn.execute(update(k).where(k.c.id == row.id).values(
            valid_from=row.valid_from + by, valid_until=row.valid_until + by if row.valid_until else None))


# ---- the store's key history ---------------------------------------------------------------------------


def test_enrol_replace_and_revoke_write_the_key_history(store: Store) -> None:
    box = Box(store)
    first = box.signer.public_hex
    (key,) = store.device_keys(DEVICE)
    assert (key.sign_public_key, key.valid_until, key.ended) == (first, None, None)
    assert key.valid_from == store.get_device(DEVICE).enrolled_at  # type: ignore[union-attr]

    second = box.enrol(replace=True).public_hex
    old, new = store.device_keys(DEVICE)
    assert (old.sign_public_key, old.ended, new.sign_public_key, new.valid_until) == (first, "replaced", second, None)
    assert old.valid_until == new.valid_from == store.get_device(DEVICE).enrolled_at  # type: ignore[union-attr]
    assert new.curve_public_key == store.get_device(DEVICE).curve_public_key  # type: ignore[union-attr]

    store.revoke_device(DEVICE)
    device = store.get_device(DEVICE)
    assert device is not None and device.revoked
    *_, revoked = store.device_keys(DEVICE)
    assert (revoked.sign_public_key, revoked.ended) == (second, "revoked") and revoked.valid_until is not None
    third = box.enrol(replace=True).public_hex  # a revoked box re-issued: the revoked key keeps its end
    assert [(k.sign_public_key, k.ended) for k in store.device_keys(DEVICE)] == [
        (first, "replaced"), (second, "revoked"), (third, None)]
    assert store.device_keys("nobody") == []


# ---- hub verify -----------------------------------------------------------------------------------------


def test_events_signed_before_and_after_a_replace_both_verify(store: Store) -> None:
    box = Box(store)
    case_id = box.send(1)
    box.enrol(replace=True)
    assert box.send(2) == case_id
    before, after = verify_event(store, ev(1)), verify_event(store, ev(2))
    assert before.ok and after.ok, (before, after)
    assert after.problems == []
    assert [p for p in before.problems if "earlier key" in p] == [p for p in before.problems if p.startswith("note:")]
    assert len(before.problems) == 1 and before.problems[0].endswith(", replaced)")


def test_verify_catches_an_event_row_changed_after_ingest(store: Store) -> None:
    """The hub keeps the event JSON as the device signed it: editing the stored row (here the class, as
    someone covering up a case might) breaks the metadata hash, on SQLite and PostgreSQL alike."""
    box = Box(store)
    box.send(1)
    box.send(2)
    assert verify_event(store, ev(1)).ok and verify_event(store, ev(2)).ok
    e = schema.events
    with db.begin_write(store.engine) as conn:
        payload = conn.execute(select(e.c.payload).where(e.c.event_id == ev(1))).scalar_one()
        conn.execute(update(e).where(e.c.event_id == ev(1)).values(payload={**payload, "class_id": "garbage_overflow"}))
    changed = verify_event(store, ev(1))
    assert not changed.ok
    assert any("stored event metadata differs from the signed manifest" in p for p in changed.problems)
    assert verify_event(store, ev(2)).ok  # the neighbour is untouched


def test_an_old_key_is_not_accepted_outside_its_period(store: Store) -> None:
    box = Box(store)
    old = box.signer
    box.send(1)
    box.enrol(replace=True)
    # Stored right after the change (a running hub's device directory is up to a second old): accepted.
    box.send(2, signer=old)
    handed_over = verify_event(store, ev(2))
    assert handed_over.ok and "previous key" in handed_over.problems[0], handed_over
    # The same event when the old key had ended long before the hub received it: refused, and said why.
    shift_key(store, old.public_hex, -timedelta(seconds=KEY_HANDOVER_S + 60))
    late = verify_event(store, ev(2))
    assert not late.ok
    assert late.problems[0].startswith(f"signed with a key device {DEVICE} no longer held when the hub received")
    assert verify_event(store, ev(1)).problems[0].startswith(f"signed with a key device {DEVICE} no longer held")
    shift_key(store, old.public_hex, timedelta(days=1))  # now it starts after both were received
    assert verify_event(store, ev(1)).problems[0].startswith(f"signed with a key device {DEVICE} did not yet hold")


def test_a_signature_no_key_made_is_reported_as_invalid(store: Store) -> None:
    box = Box(store)
    box.send(1, signer=Signer(generate_signing_key()[0]))  # a key the hub never issued
    result = verify_event(store, ev(1))
    assert not result.ok and result.problems == ["manifest signature does not verify with the device's key"]


def test_hub_verify_cli_after_replace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from protocol.bundle import DeviceBundle
    from tests.hub.devices.test_cli import ingest_signed, run

    data = tmp_path / "hub"
    assert run(data, "enroll", DEVICE, "--out", str(tmp_path / "old.json")) == 0
    store = Store.open(None, data)
    case_id = ingest_signed(store, DeviceBundle.load(tmp_path / "old.json"), 1)
    store.close()
    assert run(data, "enroll", DEVICE, "--out", str(tmp_path / "new.json"), "--replace") == 0
    store = Store.open(None, data)
    assert ingest_signed(store, DeviceBundle.load(tmp_path / "new.json"), 2) == case_id
    store.close()
    capsys.readouterr()
    assert run(data, "verify", case_id) == 0
    out = capsys.readouterr().out
    assert "2 of 2 event(s) verified" in out and "note: signed with an earlier key of device box-1" in out
    assert run(data, "verify", ev(1)) == 0


# ---- evidence packages ----------------------------------------------------------------------------------


@pytest.fixture
def rotated(store: Store) -> Iterator[tuple[str, list[str]]]:
    """A case of box-1 with events 1-2 signed with its first key and 3-4 with the key of a re-enrolment."""
    box = Box(store)
    keys = [box.signer.public_hex]
    case_id = box.send(1)
    box.send(2)
    keys.append(box.enrol(replace=True).public_hex)
    box.send(3)
    assert box.send(4) == case_id
    yield case_id, keys


def test_package_of_a_case_across_a_key_rotation_verifies(store: Store, rotated: tuple[str, list[str]]) -> None:
    case_id, keys = rotated
    package = build_package(store, case_id)
    report = verify_package(package)
    assert report.ok, report.lines()
    assert [c.ok for c in report.events] == [True] * 4
    assert "chained to seq 2" in report.events[2].notes  # the chain runs across the rotation
    assert any("earlier key" in n for n in report.events[0].notes)
    assert [k.sign_public_key for k in report.device_keys[DEVICE]] == keys and report.keys == {DEVICE: keys[1]}
    key_lines = [line for line in report.lines() if line.startswith(f"key  {DEVICE}:")]
    assert len(key_lines) == 2 and "(replaced)" in key_lines[0] and "until export" in key_lines[1]
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        devices = json.loads(zf.read("devices.json"))
    assert [k["ended"] for k in devices[DEVICE]["keys"]] == ["replaced", None]


def test_package_carries_only_the_keys_its_events_need(store: Store) -> None:
    box = Box(store)
    first = box.signer.public_hex
    box.enrol(replace=True)
    shift_key(store, first, -timedelta(days=1))  # replaced well before (not within KEY_HANDOVER_S)
    case_id = box.send(1)  # only under the second key
    box.enrol(replace=True)  # and a third the case never used
    report = verify_package(build_package(store, case_id))
    assert report.ok, report.lines()
    assert first not in [k.sign_public_key for k in report.device_keys[DEVICE]]
    assert len(report.device_keys[DEVICE]) == 1


def rezip(data: bytes, files: dict[str, bytes]) -> bytes:
    """The package with `files` replaced, package.json re-hashed as a tamperer (or an old hub) would."""
    return rewrite(data, lambda name, content: files.get(name, content), reindex=True)


def test_tampered_rotated_package_still_fails(store: Store, rotated: tuple[str, list[str]]) -> None:
    case_id, keys = rotated
    package = build_package(store, case_id)
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        devices = json.loads(zf.read("devices.json"))
        index = json.loads(zf.read("package.json"))
        manifest = zf.read(f"events/{ev(3)}/manifest.json")

    # Event 3's manifest altered (and the index re-hashed): its signature fails under the key in force.
    forged = manifest.replace(b'"captured_at":"2026-01-01T00:00:03Z"', b'"captured_at":"2026-01-01T00:00:09Z"')
    assert forged != manifest
    report = verify_package(rezip(package, {f"events/{ev(3)}/manifest.json": forged}))
    assert not report.ok
    assert report.events[2].problems == ["signature.ed25519: manifest signature does not verify with the device's key"]

    # The first key's period moved to start after events 1-2 were received: they no longer verify.
    devices[DEVICE]["keys"][0]["valid_from"] = devices[DEVICE]["keys"][0]["valid_until"]
    report = verify_package(rezip(package, {"devices.json": json.dumps(devices).encode()}))
    assert [c.ok for c in report.events] == [False, False, True, True]
    assert "did not yet hold" in report.events[0].problems[0]

    # The key history dropped: the remaining key is not the one events 1-2 were received under.
    devices[DEVICE]["keys"] = devices[DEVICE]["keys"][1:]
    report = verify_package(rezip(package, {"devices.json": json.dumps(devices).encode()}))
    assert [c.ok for c in report.events] == [False, False, True, True]
    assert "no key of device box-1 was in force" in report.events[0].problems[0]

    # Received times removed from a version 2 index: the key in force can't be chosen.
    for entry in index["events"]:
        entry.pop("received_at")
    report = verify_package(rezip(package, {"package.json": json.dumps(index).encode()}))
    assert not report.ok and all("gives no received_at" in c.problems[0] for c in report.events)


def as_version_1(package: bytes, store: Store, key: str | None = None) -> bytes:
    """The package as a version 1 hub wrote it: one key per device (`key`: instead of the registered one),
    no received_at in the index, no hub signature."""
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        index = json.loads(zf.read("package.json"))
    device = store.get_device(DEVICE)
    assert device is not None
    index["version"] = 1
    del index["hub_sign_public_key"]
    for entry in index["events"]:
        del entry["received_at"]
    devices = {DEVICE: {"sign_public_key": key or device.sign_public_key, "enrolled_at": device.enrolled_at.isoformat(),
                        "revoked": False, "revoked_at": None}}
    files = {"devices.json": json.dumps(devices).encode(), "package.json": json.dumps(index).encode()}
    return rewrite(package, lambda name, content: None if name == "package.json.ed25519" else files.get(name, content),
                   reindex=True)


def test_a_version_1_package_still_verifies(store: Store) -> None:
    box = Box(store)
    case_id = box.send(1)
    box.send(2)
    package = build_package(store, case_id)
    old = as_version_1(package, store)
    report = verify_package(old)
    assert report.ok, report.lines()
    assert report.keys == {DEVICE: box.signer.public_hex}
    assert f"key  {DEVICE}: Ed25519 {box.signer.public_hex} (compare with the bureau's device registry)" \
        in report.lines()
    assert "note package: format version 1 has no hub signature: case.json, devices.json and photos/ rest only " \
        "on the hashes in package.json" in report.lines()
    assert report.hub_key is None and not report.hub_signed
    required = verify_package(old, hub_keys=[HubSigningKey.load_or_create(store.data_dir).public])
    assert required.errors[0].startswith("not signed by a hub; required: signed by hub key ")
    bad = verify_package(as_version_1(package, store, key=generate_signing_key()[1]))
    assert not bad.ok and all(not c.ok for c in bad.events)


# ---- migration of a schema-2 database -------------------------------------------------------------------


def _indexes(engine: db.Engine, table: str) -> dict[str, list[str]]:
    return {ix["name"]: list(ix["column_names"]) for ix in inspect(engine).get_indexes(table)}


def test_version_2_database_back_fills_the_key_history(db_url: str | None, tmp_path: Path) -> None:
    """A database made before step 3: its devices' keys become the history, so old events verify."""
    engine = db.make_engine(db_url or db.sqlite_url(tmp_path))
    enrolled = datetime.now(UTC) - timedelta(days=400)
    secret, public = generate_signing_key()
    _, revoked_public = generate_signing_key()
    with db.begin_write(engine) as conn:  # schema 2 as released: every table but device_keys
        schema.metadata.create_all(conn, tables=[t for t in schema.metadata.sorted_tables
                                                 if t is not schema.device_keys])
        for version, name, _ in migrations.MIGRATIONS[:2]:
            conn.execute(schema.schema_version.insert().values(version=version, name=name, applied_at=db.utcnow()))
        conn.execute(schema.devices.insert(), [
            {"device_id": DEVICE, "curve_public_key": "curve-1", "sign_public_key": public, "revoked": False,
             "enrolled_at": enrolled, "revoked_at": None},
            {"device_id": "box-gone", "curve_public_key": "curve-2", "sign_public_key": revoked_public,
             "revoked": True, "enrolled_at": enrolled, "revoked_at": enrolled + timedelta(days=30)},
        ])
    assert "device_keys" not in inspect(engine).get_table_names()
    old = Store(engine, tmp_path / "hub")
    box = Box.__new__(Box)
    box.store, box.prev, box.signer = old, GENESIS_HASH, Signer(secret)
    case_id = box.send(1)

    assert migrations.migrate(engine) == migrations.SCHEMA_VERSION
    assert migrations.migrate(engine) == migrations.SCHEMA_VERSION  # nothing left to do
    assert _indexes(engine, "device_keys") == {ix.name: [c.name for c in ix.columns]
                                               for ix in schema.device_keys.indexes}
    store = Store(engine, tmp_path / "hub")
    (key,) = store.device_keys(DEVICE)
    assert (key.sign_public_key, key.valid_from, key.valid_until, key.ended) == (public, enrolled, None, None)
    (gone,) = store.device_keys("box-gone")
    assert (gone.valid_until, gone.ended) == (enrolled + timedelta(days=30), "revoked")
    assert verify_event(store, ev(1)).ok

    box.store = store
    box.enrol(replace=True)  # the first re-enrolment after the upgrade keeps the back-filled key
    assert box.send(2) == case_id
    assert verify_event(store, ev(1)).ok and verify_event(store, ev(2)).ok
    report = verify_package(build_package(store, case_id))
    assert report.ok, report.lines()
    store.close()


# ---- the rule itself (protocol.key_history) ------------------------------------------------------------------


def test_check_signature_picks_the_key_by_received_time() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    a_secret, a_public = generate_signing_key()
    b_secret, b_public = generate_signing_key()
    keys = [KeyPeriod(a_public, t0, t0 + timedelta(days=10), "replaced"), KeyPeriod(b_public, t0 + timedelta(days=10))]
    signed_a = Signer(a_secret).sign(b"manifest")
    signed_b = Signer(b_secret).sign(b"manifest")
    assert check_signature(keys, b"manifest", signed_a, t0 + timedelta(days=1), DEVICE).key == keys[0]
    assert check_signature(keys, b"manifest", signed_b, t0 + timedelta(days=11), DEVICE).key == keys[1]
    just_after = check_signature(keys, b"manifest", signed_a, t0 + timedelta(days=10, seconds=2), DEVICE)
    assert just_after.ok and "2.0 s before" in just_after.notes[0]
    late = check_signature(keys, b"manifest", signed_a, t0 + timedelta(days=12), DEVICE)
    assert not late.ok and "no longer held" in late.problems[0]
    early = check_signature(keys, b"manifest", signed_b, t0 + timedelta(days=1), DEVICE)
    assert not early.ok and "did not yet hold" in early.problems[0]
    before_all = check_signature(keys, b"manifest", b"x" * 64, t0 - timedelta(days=1), DEVICE)
    assert not before_all.ok and "no key of device box-1 was in force" in before_all.problems[0]
    unknown_time = check_signature(keys, b"manifest", signed_a, None, DEVICE)
    assert not unknown_time.ok and "can't tell which" in unknown_time.problems[0]
    assert check_signature(keys[:1], b"manifest", signed_a, None, DEVICE).ok  # one key, no period: version 1
    assert not check_signature([], b"manifest", signed_a, t0, DEVICE).ok


# ---- through real CURVE ingest ----------------------------------------------------------------------------


def test_real_ingest_across_a_re_enrolment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An agent sends, its box is re-enrolled (`--replace`), the new box sends: both verify, in `hub verify`
    and in the evidence package."""
    from protocol.codec import Command
    from tests.hub.devices.test_cli import run
    from tests.hub.ingest.test_ingest import Client, start_hub

    hubs = start_hub(tmp_path)
    hub = next(hubs)
    try:
        old = Client(hub.enroll(DEVICE), hub.endpoint)
        reply = old.request(old.sealed(1))
        assert reply is not None and reply.command is Command.ACK
        case_id = reply.reply.case_id
        old.close()
        new = Client(enroll_device(hub.store, hub.data_dir, DEVICE, hub.endpoint, replace=True), hub.endpoint)
        new.seq, new.prev = old.seq, old.prev  # the replacement box carries on the device's count
        reply = new.request(new.sealed(2))
        new.close()
        assert reply is not None and reply.command is Command.ACK and reply.reply.case_id == case_id
        assert run(hub.data_dir, "verify", str(case_id)) == 0
        assert "2 of 2 event(s) verified" in capsys.readouterr().out
        report = verify_package(build_package(hub.store, str(case_id)))
        assert report.ok and len(report.events) == 2 and len(report.device_keys[DEVICE]) == 2, report.lines()
        assert "chained to seq 1" in report.events[1].notes
    finally:
        hubs.close()
