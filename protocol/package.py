"""The evidence-package format and its offline verifier: one case's signed evidence in a ZIP anyone can verify.

A bureau hands the package to an enforcement officer or a court (非现场执法). Inside, in this order:

    README.txt                   how to verify it (English, 中文)
    case.json                    the hub's case record: class, place, camera, times, status, timeline, events
    devices.json                 device id -> its Ed25519 public keys, each with the period the hub accepted
                                 it (valid_from, valid_until), and revocation
    events/<event_id>/           per edge event: manifest.json (the exact bytes the device signed),
                                 signature.ed25519 (raw 64 bytes), event.json (the event metadata) and
                                 the media files under their own names
    photos/<sha256>.jpg          hand-uploaded photos (handler feedback, people's reports): NOT device-signed
    package.json                 format, export time, SHA-256 of every other file, what it holds, the hub's
                                 public key (hub_sign_public_key)
    package.json.ed25519         the hub's Ed25519 signature of package.json's exact bytes (raw 64 bytes)

The hub builds packages (hub.evidence.package.build_package); `verify_package` here needs only the bytes: no
hub, no database, no network, nothing written to disk, and only the core dependencies (pydantic, PyNaCl).
What a verified package proves: each event's manifest was signed by the key devices.json names for its
device at the time the hub received it (received_at in package.json; a device re-enrolled with `--replace`
has several keys, protocol.key_history), and event.json and the media are the bytes that manifest covers.
That the key is the camera's is for the officer to compare with the bureau's device registry (the report
prints each key). case.json, devices.json and photos/ are the hub's word: the hub signs package.json, which
holds their hashes, with its own Ed25519 key (hub.devices.hubkeys.HubSigningKey), so they can't be changed
after export without the hub's key. Anyone can sign a forged package with a key of their own: the verifier
prints the hub key, and given the key the bureau publishes (`cityeye hub keys`; `--hub-key`) it fails any
package not signed with it.

Format versions: 1 had one key per device (devices.json: sign_public_key) and no received_at per event;
2 has every key an event of the package needs, with its period; 3 adds the hub's signature. `verify_package`
reads all three; a version 1 or 2 package verifies without a hub signature unless a hub key is required.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from pydantic import Field, TypeAdapter, ValidationError

from protocol.key_history import KeyPeriod, check_signature, iso
from protocol.manifest import (
    SHA256_HEX,
    EvidenceManifest,
    ManifestError,
    check_manifest_matches,
    first_error,
    sha256_hex,
)
from protocol.messages import ProblemEvent, WireModel

FORMAT = "cityeye-evidence-package"
FORMAT_VERSION = 3  # 2: each device's keys with their periods; 3: signed by the hub (see the docstring)
MB = 1024**2

INDEX = "package.json"
HUB_SIGNATURE = "package.json.ed25519"
README = "README.txt"
MANIFEST, SIGNATURE, EVENT = "manifest.json", "signature.ed25519", "event.json"
# One path segment: no leading dot, so never "." or ".." or a hidden file; no "\", ":" or drive letters.
_SEGMENT = r"[A-Za-z0-9_@-][A-Za-z0-9_.@-]{0,127}"
SAFE_NAME = re.compile(rf"^(?:{_SEGMENT}/)*{_SEGMENT}/?$")
TEXT_SUFFIXES = (".json", ".txt")
# What a hostile ZIP can raise while being opened or read (bad headers, CRC, deflate stream, sizes).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
               NotImplementedError, RuntimeError, OverflowError, IndexError, KeyError)

Sha256 = Annotated[str, Field(pattern=SHA256_HEX)]



class PackageError(ValueError):
    """A package that can't be built (unknown case, too large: hub.evidence.package) or can't be read; the
    message says why."""


# ---- the package's own JSON documents (written by the hub, parsed strictly by the verifier) --------------


class PackageEvent(WireModel):
    path: str = Field(pattern=r"^events/[A-Za-z0-9_-][A-Za-z0-9_.@-]{0,160}/$", description="folder, ends in /")
    device_id: str = Field(max_length=64)
    event_id: str = Field(max_length=64)
    seq: int
    received_at: datetime | None = Field(default=None, description="when the hub received it: picks the device key "
                                         "in force (version 2 on; absent in version 1)")


class PackagePhoto(WireModel):
    path: str = Field(pattern=r"^photos/[0-9a-f]{64}\.(jpg|bin)$")
    sha256: Sha256
    size: int = Field(ge=0)
    signed: Literal[False] = False
    uses: list[str] = Field(description="where the case refers to it: timeline step or report")


Ed25519Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Ed25519, hex")]


class PackageIndex(WireModel):
    format: Literal["cityeye-evidence-package"]
    version: Literal[1, 2, 3]
    case_id: str = Field(max_length=64)
    exported_at: datetime = Field(description="hub time of export (UTC)")
    exported_by: str | None = Field(default=None, max_length=200)
    files: dict[str, Sha256] = Field(description="SHA-256 of every file in the ZIP but this one")
    events: list[PackageEvent]
    photos: list[PackagePhoto]
    missing: list[str] = Field(default_factory=list, description="evidence the hub could not find at export")
    trust: dict[str, str] = Field(default_factory=dict, description="what is signed by whom, in words")
    hub_sign_public_key: Ed25519Hex | None = Field(
        default=None, description=f"the exporting hub's key; {HUB_SIGNATURE} is its signature of this file (from "
        "version 3)")


class DeviceKeyEntry(WireModel):
    """One key of a device and when the hub accepted it: from valid_from until valid_until (null: still)."""

    sign_public_key: Ed25519Hex
    valid_from: datetime
    valid_until: datetime | None = None
    ended: Literal["replaced", "revoked"] | None = None

    def period(self) -> KeyPeriod:
        return KeyPeriod(self.sign_public_key, self.valid_from, self.valid_until, self.ended)


class DeviceEntry(WireModel):
    """Version 2: the device's keys that the package's events need, oldest first."""

    keys: list[DeviceKeyEntry] = Field(min_length=1)
    revoked: bool = False
    revoked_at: datetime | None = None


class DeviceEntryV1(WireModel):
    """Version 1: the device's one key (the one registered at export)."""

    sign_public_key: Ed25519Hex
    enrolled_at: datetime | None = None
    revoked: bool = False
    revoked_at: datetime | None = None


DEVICES = TypeAdapter(dict[str, DeviceEntry])
DEVICES_V1 = TypeAdapter(dict[str, DeviceEntryV1])

TRUST = {
    "events": "events/*/manifest.json is signed by the device (signature.ed25519, Ed25519, the key in devices.json "
              "in force when the hub received the event: received_at in package.json); "
              "event.json and each media file are bound to it by their SHA-256 in the manifest; consecutive "
              "manifests of a device chain by prev_manifest_sha256",
    "unsigned": "case.json, devices.json and photos/ are the hub's records: no device signature. Photos were "
                "uploaded by people (handler feedback, reports), not captured by a camera box",
    "hub": f"this file is signed by the exporting hub ({HUB_SIGNATURE}, Ed25519, hub_sign_public_key): every file's "
           "SHA-256 above, so the hub's records too, are as the hub exported them",
    "keys": "compare each key in devices.json with the bureau's device registry, and hub_sign_public_key with the "
            "hub key the bureau publishes, before relying on a signature",
}

README_TEXT = """\
CityEye evidence package / CityEye 证据包
=========================================

Verify (offline, nothing is sent anywhere):
    cityeye evidence verify THIS_FILE.zip
It checks: the SHA-256 of every file against package.json; each event's manifest.json against its
signature.ed25519 with the device's Ed25519 key in devices.json that was in force when the hub received
the event (a device re-enrolled with new keys lists each key with its period); that event.json and
every photo or clip of the event are exactly the bytes the manifest lists; and the hash chain between
consecutive events of one device; and the hub's signature of package.json (package.json.ed25519),
which covers the hash of every file. Exit code 0 means everything verified.
Then compare the device keys it prints with the bureau's device registry, and the hub key with the one
the bureau publishes (or pass it: --hub-key KEY). case.json, devices.json and the files under photos/
(uploaded by people) are the hub's records: signed by the hub, not by a device.

校验方法（离线进行，不向外发送任何数据）：
    cityeye evidence verify 本文件.zip
校验内容：package.json 中每个文件的 SHA-256；每个事件的 manifest.json 是否由 devices.json 中该设备在平台
接收该事件时有效的 Ed25519 公钥签名（signature.ed25519；设备重新注册换过密钥时，每个公钥都列出其
有效期）；event.json 及该事件的每张照片、每段视频是否与签名清单完全一致；
同一设备相邻事件之间的哈希链；以及平台对 package.json 的签名（package.json.ed25519，覆盖每个文件的
哈希）。退出码为 0 表示全部通过。
然后请将输出的设备公钥与本局设备登记簿核对，并将平台公钥与本局公布的平台公钥核对（或用 --hub-key 指定）。
case.json、devices.json 以及 photos/ 下的照片（人工上传）是平台的记录，由平台签名，没有设备签名。
"""





# ---- verify ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyLimits:
    """What the verifier reads before refusing: a ZIP bomb or a huge member fails here, not in memory."""

    max_members: int = 20_000
    max_member_bytes: int = 256 * MB  # one file (an edge clip is at most 16 MB on the wire)
    max_total_bytes: int = 4096 * MB  # all files, uncompressed, as the ZIP declares them


@dataclass
class Check:
    """One event or photo of the package and what is wrong with it (nothing: it verifies)."""

    label: str
    path: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Report:
    """The verdict: problems of the package as a whole (`errors`), then per event and per photo."""

    case_id: str | None = None
    exported_at: datetime | None = None
    exported_by: str | None = None
    errors: list[str] = field(default_factory=list)
    events: list[Check] = field(default_factory=list)
    photos: list[Check] = field(default_factory=list)
    device_keys: dict[str, list[KeyPeriod]] = field(default_factory=dict)  # per device, oldest first, to compare
    files_listed: int = 0
    files_matching: int = 0
    version: int | None = None
    hub_key: str | None = None  # hub_sign_public_key, as the package names it
    hub_signed: bool = False  # package.json's signature verifies with hub_key
    hub_key_required: bool = False  # hub_key was checked against the keys the caller trusts

    @property
    def keys(self) -> dict[str, str]:
        """Device id -> its newest Ed25519 key (hex) in the package; `device_keys` has every key."""
        return {device_id: keys[-1].sign_public_key for device_id, keys in self.device_keys.items() if keys}

    @property
    def ok(self) -> bool:
        return not self.errors and all(c.ok for c in (*self.events, *self.photos))

    @property
    def problem_count(self) -> int:
        return len(self.errors) + sum(len(c.problems) for c in (*self.events, *self.photos))

    def lines(self) -> list[str]:
        """The report as an officer reads it: one line per event or photo, its problems under it."""
        when = iso(self.exported_at) if self.exported_at else "?"
        out = [f"Evidence package of case {self.case_id or '?'}, exported {when}"
               + (f" by {self.exported_by}" if self.exported_by else "")]
        out += [f"FAIL package: {e}" for e in self.errors]
        if self.files_listed and self.files_matching == self.files_listed:
            out.append(f"OK   package: the SHA-256 of all {self.files_listed} file(s) match {INDEX}")
        if self.hub_signed:
            out.append(f"OK   package: {INDEX} is signed by the hub key below")
        elif self.version is not None and self.version < 3 and self.hub_key is None:
            out.append(f"note package: format version {self.version} has no hub signature: case.json, devices.json "
                       f"and photos/ rest only on the hashes in {INDEX}")
        for check in (*self.events, *self.photos):
            out.append(f"{'OK  ' if check.ok else 'FAIL'} {check.label}")
            out += [f"       {p}" for p in check.problems] + [f"       note: {n}" for n in check.notes]
        for device_id, keys in sorted(self.device_keys.items()):
            for key in keys:
                when = f" in force from {iso(key.valid_from)} until " + (
                    f"{iso(key.valid_until)} ({key.ended})" if key.valid_until else "export") if key.valid_from else ""
                out.append(f"key  {device_id}: Ed25519 {key.sign_public_key}{when} (compare with the bureau's "
                           "device registry)")
        if self.hub_key is not None:
            whose = "the required hub key" if self.hub_key_required and self.hub_signed else \
                "compare with the hub key the bureau publishes"
            out.append(f"key  hub: Ed25519 {self.hub_key} ({whose})")
        verdict = "VERIFIED" if self.ok else f"NOT VERIFIED: {self.problem_count} problem(s)"
        out.append(f"{verdict} ({len(self.events)} event(s), {len(self.photos)} unsigned photo(s))")
        return out


def verify_package(data: bytes, limits: VerifyLimits = VerifyLimits(), *, hub_keys: Sequence[str] = ()) -> Report:
    """Check a package from its bytes alone. Never raises on bad input: every problem is in the Report.
    `hub_keys`: the hub keys (Ed25519, hex) the caller trusts; when given, a package not signed with one
    of them fails, whatever else verifies."""
    report = Report()
    try:
        members = _Members(data, limits)
    except PackageError as exc:
        report.errors.append(str(exc))
        return report
    read = _read_index(members, report)
    if read is None:
        if hub_keys:
            report.errors.append("no hub signature could be checked")
        return report
    index, raw_index = read
    report.case_id, report.exported_at, report.exported_by = index.case_id, index.exported_at, index.exported_by
    report.version = index.version
    _check_hub_signature(members, index, raw_index, report)
    if hub_keys:
        _require_hub_key(report, [k.lower() for k in hub_keys])
    _check_hashes(members, index, report)
    _check_case_json(members, report)
    devices = _read_devices(members, index.version, report)
    report.device_keys = {d: devices[d].keys for d in sorted({e.device_id for e in index.events} & set(devices))}
    checked = [_check_event(members, entry, devices, index.version) for entry in index.events]
    _check_chains([(check, signed) for check, signed in checked if signed is not None])
    report.events = [check for check, _ in checked]
    report.photos = [_check_photo(members, photo) for photo in index.photos]
    return report


class _Members:
    """The ZIP's files by name, each read at most `max_member_bytes`; nothing is extracted anywhere."""

    def __init__(self, data: bytes, limits: VerifyLimits) -> None:
        self.limits = limits
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zip.infolist()
        except _ZIP_ERRORS as exc:
            raise PackageError(f"not a readable ZIP file ({len(data)} bytes): {exc}") from None
        if len(infos) > limits.max_members:
            raise PackageError(f"the ZIP has {len(infos)} members, over the limit of {limits.max_members}")
        self.files: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            self._admit(info)
            total += info.file_size
            if not info.is_dir():
                self.files[info.filename] = info
        if total > limits.max_total_bytes:
            raise PackageError(f"the ZIP's members declare {total} bytes uncompressed, over the limit of "
                               f"{limits.max_total_bytes}: refused (a ZIP bomb?)")

    def _admit(self, info: zipfile.ZipInfo) -> None:
        name = info.filename
        if not SAFE_NAME.match(name):
            raise PackageError(f"unsafe member name {name!r} (absolute, '..', '\\' or unexpected characters): "
                               "not a CityEye evidence package")
        if name in self.files:
            raise PackageError(f"member {name!r} appears twice in the ZIP")
        if info.flag_bits & 0x1:
            raise PackageError(f"member {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise PackageError(f"member {name!r} uses compression method {info.compress_type} (only stored or "
                               "deflated)")
        if info.file_size > self.limits.max_member_bytes:
            raise PackageError(f"member {name!r} declares {info.file_size} bytes, over the limit of "
                               f"{self.limits.max_member_bytes}")

    def get(self, name: str) -> bytes | None:
        """The member's bytes, None when it is absent; PackageError when it can't be read intact."""
        info = self.files.get(name)
        if info is None:
            return None
        limit = self.limits.max_member_bytes
        try:
            with self._zip.open(info) as f:
                data = f.read(limit + 1)
        except _ZIP_ERRORS as exc:
            raise PackageError(f"{name}: damaged in the ZIP ({exc})") from None
        if len(data) > limit:
            raise PackageError(f"{name}: more than {limit} bytes")
        return data

    def need(self, name: str) -> bytes:
        data = self.get(name)
        if data is None:
            raise PackageError(f"{name} is missing from the package")
        return data


def _read_index(members: _Members, report: Report) -> tuple[PackageIndex, bytes] | None:
    try:
        raw = members.need(INDEX)
        return PackageIndex.model_validate_json(raw), raw
    except PackageError as exc:
        report.errors.append(f"{exc}: not a CityEye evidence package")
    except ValidationError as exc:
        report.errors.append(f"{INDEX} is not valid: {first_error(exc)}")
    return None


def _check_hub_signature(members: _Members, index: PackageIndex, raw_index: bytes, report: Report) -> None:
    """The hub's signature of package.json's exact bytes, with the key package.json names. Required from
    version 3 on: removing it (and the key) from a version 3 package is itself a failure."""
    report.hub_key = key = index.hub_sign_public_key
    try:
        signature = members.get(HUB_SIGNATURE)
    except PackageError as exc:
        report.errors.append(str(exc))
        return
    if key is None:
        if index.version >= 3:
            report.errors.append(f"{INDEX} names no hub key (hub_sign_public_key): a version {index.version} package "
                                 "is signed by the hub that exported it")
        elif signature is not None:
            report.errors.append(f"{HUB_SIGNATURE} is in the ZIP but {INDEX} names no hub key to check it with")
        return
    if signature is None:
        report.errors.append(f"{HUB_SIGNATURE} is missing: {INDEX} is not signed by the hub it names")
        return
    try:
        VerifyKey(bytes.fromhex(key)).verify(raw_index, signature)
    except (BadSignatureError, ValueError):
        report.errors.append(f"{HUB_SIGNATURE}: the hub's signature of {INDEX} does not verify with its "
                             f"hub_sign_public_key: {INDEX} or the signature changed after export")
        return
    report.hub_signed = True


def _require_hub_key(report: Report, trusted: list[str]) -> None:
    """The key the package names must be one the caller trusts (whether its signature verifies is
    `_check_hub_signature`'s verdict, already in the report)."""
    report.hub_key_required = True
    wanted = ", ".join(trusted)
    if report.hub_key is None:
        report.errors.append(f"not signed by a hub; required: signed by hub key {wanted}")
    elif report.hub_key not in trusted:
        report.errors.append(f"signed by hub key {report.hub_key}, not by the required {wanted}: not exported by "
                             "that hub, or re-signed by someone else")


def _check_hashes(members: _Members, index: PackageIndex, report: Report) -> None:
    report.files_listed = len(index.files)
    for name, expected in index.files.items():
        try:
            data = members.get(name)
        except PackageError as exc:
            report.errors.append(str(exc))
            continue
        if data is None:
            report.errors.append(f"{name} is listed in {INDEX} but missing from the ZIP")
        elif sha256_hex(data) != expected:
            report.errors.append(f"{name}: SHA-256 differs from {INDEX}")
        else:
            report.files_matching += 1
    extra = sorted(set(members.files) - set(index.files) - {INDEX, HUB_SIGNATURE})
    report.errors += [f"{name} is in the ZIP but not listed in {INDEX}" for name in extra]
    # Every file must belong to something the verifier checks: an event dropped from the index can't hide.
    folders = tuple(e.path for e in index.events)
    loose = sorted(n for n in set(index.files) - {README, "case.json", "devices.json"} - {p.path for p in index.photos}
                   if not n.startswith(folders) or n.count("/") != 2)
    report.errors += [f"{name} belongs to no event or photo listed in {INDEX}" for name in loose]
    report.errors += [f"missing at export: {m}" for m in index.missing]


def _check_case_json(members: _Members, report: Report) -> None:
    try:
        case = json.loads(members.need("case.json"))
    except PackageError as exc:
        report.errors.append(str(exc))
        return
    except (ValueError, RecursionError) as exc:
        report.errors.append(f"case.json is not JSON: {exc}")
        return
    if not isinstance(case, dict) or case.get("case_id") != report.case_id:
        report.errors.append(f"case.json is not the record of case {report.case_id}")


@dataclass(frozen=True)
class _Device:
    """A device of devices.json, either version: its keys with their periods (version 1: one, no period)."""

    keys: list[KeyPeriod]
    revoked: bool
    revoked_at: datetime | None


def _read_devices(members: _Members, version: int, report: Report) -> dict[str, _Device]:
    try:
        raw = members.need("devices.json")
        if version == 1:
            return {d: _Device([KeyPeriod(e.sign_public_key, None)], e.revoked, e.revoked_at)
                    for d, e in DEVICES_V1.validate_json(raw).items()}
        return {d: _Device([k.period() for k in e.keys], e.revoked, e.revoked_at)
                for d, e in DEVICES.validate_json(raw).items()}
    except PackageError as exc:
        report.errors.append(str(exc))
    except ValidationError as exc:
        report.errors.append(f"devices.json is not valid: {first_error(exc)}")
    return {}


@dataclass(frozen=True)
class _Signed:
    """A manifest that parsed, for the chain check."""

    manifest: EvidenceManifest
    raw: bytes


def _check_event(members: _Members, entry: PackageEvent, devices: dict[str, _Device],
                 version: int) -> tuple[Check, _Signed | None]:
    check = Check(label=f"event {entry.device_id}/{entry.event_id} seq {entry.seq}", path=entry.path)
    try:
        raw = members.need(entry.path + MANIFEST)
        manifest = EvidenceManifest.from_bytes(raw)
    except (PackageError, ManifestError) as exc:
        check.problems.append(f"{MANIFEST}: {exc}")
        return check, None
    if (manifest.device_id, manifest.event_id, manifest.seq) != (entry.device_id, entry.event_id, entry.seq):
        check.problems.append(f"{MANIFEST} is for {manifest.device_id}/{manifest.event_id} seq {manifest.seq}, "
                              f"{INDEX} lists {entry.device_id}/{entry.event_id} seq {entry.seq}")
    check.label += f", captured {iso(manifest.captured_at)}"
    if entry.received_at is None and version >= 2:
        check.problems.append(f"{INDEX} gives no received_at for this event: the device key in force can't be chosen")
    _check_signature(members, entry, manifest, raw, devices.get(manifest.device_id), check)
    _check_contents(members, entry.path, manifest, check)
    return check, _Signed(manifest, raw)


def _check_signature(members: _Members, entry: PackageEvent, manifest: EvidenceManifest, raw: bytes,
                     device: _Device | None, check: Check) -> None:
    if device is None:
        check.problems.append(f"device {manifest.device_id} is not in devices.json: the signature can't be checked")
        return
    try:
        signature = members.need(entry.path + SIGNATURE)
    except PackageError as exc:
        check.problems.append(f"{SIGNATURE}: {exc}")
        return
    result = check_signature(device.keys, raw, signature, entry.received_at, manifest.device_id)
    check.problems += [f"{SIGNATURE}: {p}" for p in result.problems]
    if device.revoked:
        when = iso(device.revoked_at) if device.revoked_at else "at an unknown time"
        check.notes.append(f"device {manifest.device_id} was revoked {when}; captured "
                           f"{iso(manifest.captured_at)}")
    check.notes += result.notes
    if result.key is not None and result.key.ended == "replaced" and not result.notes:
        check.notes.append(f"signed with an earlier key of device {manifest.device_id}: {result.key.describe()}")


def _check_contents(members: _Members, folder: str, manifest: EvidenceManifest, check: Check) -> None:
    """event.json and the media against the manifest (protocol.manifest.check_manifest_matches)."""
    media: dict[str, bytes] = {}
    try:
        metadata = members.need(folder + EVENT)
        for entry in manifest.media:
            data = members.get(folder + entry.name)
            if data is not None:  # absent: check_manifest_matches names it
                media[entry.name] = data
        event = ProblemEvent.model_validate_json(metadata)
    except PackageError as exc:
        check.problems.append(str(exc))
        return
    except ValidationError as exc:
        check.problems.append(f"{EVENT} is not a valid event ({first_error(exc)}); metadata SHA-256 "
                              f"{'matches' if sha256_hex(metadata) == manifest.metadata_sha256 else 'differs from'} "
                              "the manifest")
        return
    try:
        check_manifest_matches(manifest, event, metadata, media)
    except ManifestError as exc:
        check.problems.append(str(exc))
        return
    check.label += f", camera {event.camera_id}, {len(manifest.media)} media file(s)"


def _check_chains(signed: list[tuple[Check, _Signed]]) -> None:
    """Consecutive seqs of one device: the later manifest names the earlier one's SHA-256."""
    for chain in _by_device(signed).values():
        chain.sort(key=lambda s: s[1].manifest.seq)
        for (_, a), (check, b) in itertools.pairwise(chain):
            prev, seq = b.manifest.prev_manifest_sha256, a.manifest.seq
            if b.manifest.seq == seq:  # both may be genuine (a reinstalled agent restarts its count): say so
                check.notes.append(f"seq {seq} appears twice for device {b.manifest.device_id} (its count "
                                   "restarted?): chain not checked between them")
            elif b.manifest.seq != seq + 1:
                check.notes.append(f"seq {seq + 1}..{b.manifest.seq - 1} are not in this case: chain not checked")
            elif prev != sha256_hex(a.raw):
                check.problems.append(f"hash chain broken: prev_manifest_sha256 is not the SHA-256 of the manifest "
                                      f"of seq {seq} ({a.manifest.event_id})")
            else:
                check.notes.append(f"chained to seq {seq}")


def _by_device(signed: list[tuple[Check, _Signed]]) -> dict[str, list[tuple[Check, _Signed]]]:
    groups: dict[str, list[tuple[Check, _Signed]]] = {}
    for item in signed:
        groups.setdefault(item[1].manifest.device_id, []).append(item)
    return groups


def _check_photo(members: _Members, photo: PackagePhoto) -> Check:
    check = Check(label=f"photo {photo.path} (unsigned: {'; '.join(photo.uses)})", path=photo.path)
    try:
        data = members.need(photo.path)
    except PackageError as exc:
        check.problems.append(str(exc))
        return check
    if sha256_hex(data) != photo.sha256:
        check.problems.append(f"SHA-256 differs from the one {INDEX} lists for it")
    return check
