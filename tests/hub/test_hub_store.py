"""The Store contract the ingest path relies on, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from hubfactory import T0, ingest, make_event

from hub.store import Store, StoreError, UnknownDevice
from protocol.messages import CameraHealth, Heartbeat


def test_ingest_is_idempotent_and_keeps_manifest(store: Store) -> None:
    event, media = make_event(event_id="ev-00000001")
    first = ingest(store, event, media)
    again = ingest(store, event, media)
    assert not first.duplicate and first.case_id and first.created
    assert again.duplicate and again.case_id == first.case_id
    record = store.get_event("ev-00000001")
    assert record is not None
    assert record.event == event and record.case_id == first.case_id
    assert record.manifest == b'{"m":1}' and record.signature.startswith(b"sigsig")
    sha = event.media[0].sha256
    assert store.evidence_bytes(sha) == media["snapshot.jpg"]
    assert store.evidence_path(sha).name == sha
    assert store.get_event("ev-missing1") is None


def test_media_must_match_the_declared_list(store: Store) -> None:
    event, media = make_event()
    with pytest.raises(StoreError, match="do not match the event's media list"):
        ingest(store, event, {})
    with pytest.raises(StoreError, match="bytes, but the event declares"):
        ingest(store, event, {"snapshot.jpg": media["snapshot.jpg"] + b"x"})
    tampered = bytearray(media["snapshot.jpg"])
    tampered[5] ^= 1
    with pytest.raises(StoreError, match="does not match the declared"):
        ingest(store, event, {"snapshot.jpg": bytes(tampered)})
    assert store.get_event(event.event_id) is None
    assert ingest(store, event, media).created  # nothing half-stored blocks the real one


def test_evidence_paths_are_hashes_only(store: Store) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        store.evidence_path("../../etc/passwd")
    with pytest.raises(FileNotFoundError):
        store.evidence_bytes(hashlib.sha256(b"never stored").hexdigest())


def test_device_registry_and_heartbeat(store: Store) -> None:
    store.add_device("box-1", "curve-pub", "sign-pub")
    with pytest.raises(StoreError, match="already enrolled"):
        store.add_device("box-1", "x", "y")
    dev = store.get_device("box-1")
    assert dev is not None and not dev.revoked and dev.last_seen is None
    assert dev.curve_public_key == "curve-pub" and dev.sign_public_key == "sign-pub"
    store.record_heartbeat(
        Heartbeat(device_id="box-1", sent_at=datetime.now(UTC), agent_version="0.1",
                  cameras=[CameraHealth(camera_id="cam-1", online=True, detect_fps=5.0)])
    )
    store.record_heartbeat(
        Heartbeat(device_id="box-1", sent_at=datetime.now(UTC),
                  cameras=[CameraHealth(camera_id="cam-1", online=False, last_error="rtsp timeout")])
    )
    dev = store.get_device("box-1")
    assert dev is not None and dev.last_seen is not None
    store.revoke_device("box-1")
    assert store.get_device("box-1").revoked  # type: ignore[union-attr]
    with pytest.raises(UnknownDevice):
        store.revoke_device("nobody")
    assert [d.device_id for d in store.list_devices()] == ["box-1"]
    store.add_device("box-1", "new-curve", "new-sign", replace=True)
    assert not store.get_device("box-1").revoked  # type: ignore[union-attr]


def test_reopen_existing_database(db_url: str | None, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Store.open(db_url, tmp_path / "hub")
    event, media = make_event(at=T0)
    case_id = ingest(s, event, media).case_id
    s.close()
    s = Store.open(db_url, tmp_path / "hub")
    assert ingest(s, event, media).case_id == case_id
    s.close()
