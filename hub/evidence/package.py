"""Building a case's evidence package from the store (the format and the offline verifier: protocol.package).

`build_package` reads the case, its events with their signed manifests and media, and each device's keys in
force when the hub received its events, and writes the ZIP signed with the hub's key
(hub.devices.hubkeys.HubSigningKey). Same store, same `now`: same bytes.
"""

from __future__ import annotations

import io
import json
import stat
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import Text, cast, select
from sqlalchemy.engine import Connection

from hub.cases import queries
from hub.cases.lifecycle import Role
from hub.devices.hubkeys import HubSigningKey
from hub.storage import db, schema
from protocol.key_history import KeyPeriod, iso
from protocol.manifest import sha256_hex
from protocol.package import (
    DEVICES,
    EVENT,
    FORMAT,
    FORMAT_VERSION,
    HUB_SIGNATURE,
    INDEX,
    MANIFEST,
    MB,
    README,
    README_TEXT,
    SAFE_NAME,
    SIGNATURE,
    TEXT_SUFFIXES,
    TRUST,
    DeviceEntry,
    DeviceKeyEntry,
    PackageError,
    PackageEvent,
    PackageIndex,
    PackagePhoto,
)

if TYPE_CHECKING:
    from hub.storage.store import Store

DEFAULT_MAX_BYTES = 512 * MB



class UnknownCase(PackageError):
    pass


class PackageTooLarge(PackageError):
    pass


# ---- build -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Media:
    name: str
    kind: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class _Event:
    """An events row as the package needs it; `payload_text` is the stored JSON text, not re-serialised."""

    pk: int
    device_id: str
    event_id: str
    seq: int
    source: str
    state: str
    camera_id: str
    observed_at: datetime
    received_at: datetime
    payload_text: str
    manifest: bytes
    signature: bytes
    media: list[_Media]


@dataclass
class _Plan:
    """Every file of the package in ZIP order, with the evidence still on disk until it is written."""

    files: list[tuple[str, bytes | str]] = field(default_factory=list)  # bytes, or a SHA-256 in the store
    sizes: dict[str, int] = field(default_factory=dict)
    events: list[PackageEvent] = field(default_factory=list)
    photos: dict[str, PackagePhoto] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def add(self, name: str, content: bytes | str, size: int) -> None:
        if not SAFE_NAME.match(name):
            raise PackageError(f"cannot package {name!r}: not a safe file name inside a ZIP")
        self.files.append((name, content))
        self.sizes[name] = size

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


def build_package(store: Store, case_id: str, *, max_bytes: int = DEFAULT_MAX_BYTES, exported_by: str | None = None,
                  now: datetime | None = None, hub_key: HubSigningKey | None = None,
                  role: Role = Role.ADMIN) -> bytes:
    """The evidence package of `case_id` as ZIP bytes (same store, same `now`: same bytes), signed with
    `hub_key` (default: the hub's key in the store's data dir, made on first use). The case record's
    plate is as `role` may see it: in full for the roles that act on cases (an enforcement file names the
    vehicle), masked for the reader role.

    Raises UnknownCase, or PackageTooLarge naming the size when it would exceed `max_bytes` (checked
    before any evidence file is read)."""

    now = (now or db.utcnow()).astimezone(UTC)
    with store.engine.connect() as conn:
        case = _case_record(conn, case_id, role)
        events = _case_events(conn, case_id)
        devices, unusable = _devices(conn, [e for e in events if e.source == "edge"])
    plan = _plan(store, case, events, devices)
    plan.missing += unusable
    # 1 KB per file covers the ZIP headers and the index written last.
    if plan.total + 1024 * (len(plan.files) + 1) > max_bytes:
        raise PackageTooLarge(_too_large(case_id, plan.total, max_bytes))
    index = PackageIndex(format=FORMAT, version=FORMAT_VERSION, case_id=case_id, exported_at=now,
                         exported_by=exported_by, files={}, events=plan.events, photos=list(plan.photos.values()),
                         missing=plan.missing, trust=TRUST)
    return _write_zip(store, plan, index, now, max_bytes, hub_key or HubSigningKey.load_or_create(store.data_dir))


def _too_large(case_id: str, size: int, limit: int) -> str:
    return (f"the evidence package of case {case_id} would be {size} bytes ({size / MB:.1f} MB), over the limit "
            f"of {limit} bytes ({limit / MB:.1f} MB); raise the limit (hub setting "
            "evidence_package_max_mb, or --max-mb for `cityeye hub export-evidence`)")


def _case_record(conn: Connection, case_id: str, role: Role) -> dict[str, Any]:
    """The case detail the API shows, without what only makes sense online (urls, allowed actions)."""
    detail = queries.case_detail(conn, case_id, role)
    if detail is None:
        raise UnknownCase(f"no case {case_id!r}")
    detail.pop("allowed_actions", None)
    if detail.get("plate"):
        detail["plate"].pop("can_correct", None)
    detail.pop("events", None)  # capped at 500 there; the package lists every event (_case_json)
    return detail


def _case_events(conn: Connection, case_id: str) -> list[_Event]:


    e, m = schema.events, schema.media
    # CAST to text: the JSON document as stored (PostgreSQL `json` keeps its text), not a re-serialisation.
    query = (select(e.c.id, e.c.device_id, e.c.event_id, e.c.seq, e.c.source, e.c.state, e.c.camera_id,
                    e.c.observed_at, e.c.received_at, cast(e.c.payload, Text).label("payload_text"), e.c.manifest,
                    e.c.signature)
             .where(e.c.case_id == case_id).order_by(e.c.observed_at, e.c.id))
    rows = conn.execute(query).all()
    media: dict[int, list[_Media]] = {}
    pks = [r.id for r in rows]
    for k in range(0, len(pks), 500):  # bounded IN lists
        for r in conn.execute(select(m).where(m.c.event_pk.in_(pks[k:k + 500])).order_by(m.c.id)):
            media.setdefault(r.event_pk, []).append(_Media(r.name, r.kind, r.content_type, r.size, r.sha256))
    return [_Event(pk=r.id, device_id=r.device_id, event_id=r.event_id, seq=r.seq, source=r.source, state=r.state,
                   camera_id=r.camera_id, observed_at=r.observed_at, received_at=r.received_at,
                   payload_text=r.payload_text, manifest=bytes(r.manifest or b""), signature=bytes(r.signature or b""),
                   media=media.get(r.id, []))
            for r in rows]


def _devices(conn: Connection, events: list[_Event]) -> tuple[dict[str, DeviceEntry], list[str]]:
    """The events' devices, each with the keys its events need (protocol.key_history: the key in force when the
    hub received each event, or one that ended just before), and why any device has none to package."""


    device_ids = sorted({e.device_id for e in events})
    d, k = schema.devices, schema.device_keys
    rows = {r.device_id: r for r in conn.execute(select(d).where(d.c.device_id.in_(device_ids)))} if device_ids else {}
    history: dict[str, list[Any]] = {}
    if device_ids:
        for r in conn.execute(select(k).where(k.c.device_id.in_(device_ids)).order_by(k.c.valid_from, k.c.id)):
            history.setdefault(r.device_id, []).append(r)
    entries: dict[str, DeviceEntry] = {}
    unusable: list[str] = []
    for device_id in device_ids:
        r = rows.get(device_id)
        if r is None or not history.get(device_id):
            unusable.append(f"devices.json: device {device_id} is not in the hub's registry")
            continue
        keys: list[DeviceKeyEntry] = []
        for key in _needed_keys(history[device_id], [e.received_at for e in events if e.device_id == device_id]):
            try:
                keys.append(DeviceKeyEntry(sign_public_key=key.sign_public_key, valid_from=key.valid_from,
                                           valid_until=key.valid_until, ended=key.ended))
            except ValidationError:
                unusable.append(f"devices.json: a registered key of device {device_id} is not an Ed25519 public "
                                f"key ({key.sign_public_key!r}, from {iso(key.valid_from)})")
        if keys:
            entries[device_id] = DeviceEntry(keys=keys, revoked=bool(r.revoked), revoked_at=r.revoked_at)
    return entries, unusable


def _needed_keys(history: list[Any], received: list[datetime]) -> list[Any]:
    """The keys (device_keys rows, oldest first) in force at any of `received`, or ended just before one;
    all of them when some event has none, so the verifier can say which key signed it and when."""
    periods = [KeyPeriod(r.sign_public_key, r.valid_from, r.valid_until, r.ended) for r in history]
    needed: set[int] = set()
    for at in received:
        fits = {i for i, p in enumerate(periods) if p.covers(at) or p.just_ended(at)}
        needed |= fits or set(range(len(periods)))
    return [r for i, r in enumerate(history) if i in needed]


def _plan(store: Store, case: dict[str, Any], events: list[_Event], devices: dict[str, DeviceEntry]) -> _Plan:
    """README, case.json and devices.json first, then the events' files, then the photos."""
    plan = _Plan()
    folders = _event_folders(events)
    plan.add(README, README_TEXT.encode(), len(README_TEXT.encode()))
    plan.add("case.json", b"", 0)  # its place in the order; filled in once the photos' paths are known
    devices_json = _json_bytes(DEVICES.dump_python(devices, mode="json"))
    plan.add("devices.json", devices_json, len(devices_json))
    for ev in events:
        if ev.source == "edge":
            _plan_edge_event(store, plan, ev, folders[ev.pk])
        else:
            for ref in ev.media:
                _plan_photo(store, plan, ref.sha256, f"{ev.source} report {ev.event_id} by {ev.device_id} "
                                                     f"at {iso(ev.observed_at)} ({ref.name})")
    for step in case["timeline"]:
        if step.get("photo_sha256"):
            _plan_photo(store, plan, step["photo_sha256"], f"timeline: {step['action']} by {step['actor']} "
                                                           f"at {iso(step['at'])}")
    case_json = _json_bytes(_case_json(case, events, folders, plan))
    plan.files[1] = ("case.json", case_json)
    plan.sizes["case.json"] = len(case_json)
    return plan


def _event_folders(events: list[_Event]) -> dict[int, str]:
    """events/<event_id>/; an event id two devices happen to share gets its device appended."""
    edge = [e for e in events if e.source == "edge"]
    seen: dict[str, int] = {}
    for e in edge:
        seen[e.event_id] = seen.get(e.event_id, 0) + 1
    return {e.pk: f"events/{e.event_id}/" if seen[e.event_id] == 1 else f"events/{e.event_id}@{e.device_id}/"
            for e in edge}


def _plan_edge_event(store: Store, plan: _Plan, ev: _Event, folder: str) -> None:
    metadata = ev.payload_text.encode()
    for name, data in ((MANIFEST, ev.manifest), (SIGNATURE, ev.signature), (EVENT, metadata)):
        plan.add(folder + name, data, len(data))
    for ref in ev.media:
        if ref.name in (MANIFEST, SIGNATURE, EVENT):
            raise PackageError(f"media {ref.name!r} of event {ev.event_id} has the name of a package file")
        if _stored_size(store, ref.sha256) is None:
            plan.missing.append(f"{folder}{ref.name}: not in the hub's evidence store (sha256 {ref.sha256})")
            continue
        plan.add(folder + ref.name, ref.sha256, ref.size)
    plan.events.append(PackageEvent(path=folder, device_id=ev.device_id, event_id=ev.event_id, seq=ev.seq,
                                    received_at=ev.received_at))


def _plan_photo(store: Store, plan: _Plan, sha256: str, use: str) -> None:
    if sha256 in plan.photos:
        plan.photos[sha256].uses.append(use)
        return
    path = f"photos/{sha256}.jpg"
    size = _stored_size(store, sha256)
    if size is None:
        plan.missing.append(f"{path}: not in the hub's evidence store ({use})")
        return
    plan.add(path, sha256, size)
    plan.photos[sha256] = PackagePhoto(path=path, sha256=sha256, size=size, uses=[use])


def _stored_size(store: Store, sha256: str) -> int | None:
    try:
        return store.evidence_path(sha256).stat().st_size
    except (OSError, ValueError):  # ValueError: not a SHA-256 (EvidenceError)
        return None


def _case_json(case: dict[str, Any], events: list[_Event], folders: dict[int, str], plan: _Plan) -> dict[str, Any]:
    """The case record plus every event, each pointing at its files in the package."""
    out = dict(case)
    out["timeline"] = [{**step, "photo": f"photos/{step['photo_sha256']}.jpg" if step.get("photo_sha256") else None}
                       for step in case["timeline"]]
    out["events"] = [_event_json(ev, folders.get(ev.pk), plan) for ev in events]
    return out


def _event_json(ev: _Event, folder: str | None, plan: _Plan) -> dict[str, Any]:
    def path(m: _Media) -> str | None:
        if folder:
            return folder + m.name
        return plan.photos[m.sha256].path if m.sha256 in plan.photos else None

    media = [{"name": m.name, "kind": m.kind, "content_type": m.content_type, "size": m.size, "sha256": m.sha256,
              "path": path(m)} for m in ev.media]
    out: dict[str, Any] = {
        "device_id": ev.device_id, "event_id": ev.event_id, "source": ev.source, "state": ev.state,
        "camera_id": ev.camera_id or None, "seq": ev.seq, "observed_at": ev.observed_at,
        "received_at": ev.received_at, "signed": bool(ev.signature), "path": folder, "media": media,
    }
    if ev.source != "edge":  # sensor alerts and people's reports: their report is only here
        out["report"] = json.loads(ev.payload_text)
    return out


def _write_zip(store: Store, plan: _Plan, index: PackageIndex, now: datetime, max_bytes: int,
               hub_key: HubSigningKey) -> bytes:
    buf = io.BytesIO()
    files: dict[str, str] = {}
    stamp = now.timetuple()[:6]
    with zipfile.ZipFile(buf, "w", allowZip64=True) as zf:
        for name, content in plan.files:
            data = store.evidence_bytes(content) if isinstance(content, str) else content
            files[name] = sha256_hex(data)
            _write_member(zf, name, data, stamp)
            if buf.tell() > max_bytes:  # a store file larger than its database row said
                raise PackageTooLarge(_too_large(index.case_id, buf.tell(), max_bytes))
        final = index.model_copy(update={"files": files, "hub_sign_public_key": hub_key.public})
        index_bytes = _json_bytes(final.model_dump(mode="json"))
        _write_member(zf, INDEX, index_bytes, stamp)
        _write_member(zf, HUB_SIGNATURE, hub_key.sign(index_bytes), stamp)
    return buf.getvalue()


def _write_member(zf: zipfile.ZipFile, name: str, data: bytes, stamp: tuple[int, ...]) -> None:
    info = zipfile.ZipInfo(name, date_time=stamp)  # type: ignore[arg-type]
    info.external_attr = (stat.S_IFREG | 0o444) << 16
    # JPEG and video don't shrink: stored as they are; the JSON and text files are deflated.
    info.compress_type = zipfile.ZIP_DEFLATED if name.endswith(TEXT_SUFFIXES) else zipfile.ZIP_STORED
    zf.writestr(info, data)


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=_json_default) + "\n").encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


