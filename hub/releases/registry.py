"""The model registry and its rollouts: the only code that touches the release tables.

A release is a model file the hub can push (a few-shot head or a detector ONNX), stored with the
evidence files under its sha256, with its evaluation metrics and the hub's Ed25519 signature of its
descriptor. `model_assignments` says which camera runs (should run) which release. A rollout puts a
release on canary cameras first; `judge` compares the canary's figures with the release it replaced
(`hub.releases.rollout`) and promotes it to the other cameras or rolls the canaries back. Every
step writes a `model_audit` row (who, what, which cameras, why).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from hub.cases.lifecycle import CaseStatus
from hub.devices.hubkeys import HubSigningKey
from hub.releases import pushes
from hub.releases.rollout import Judgement, RolloutPolicy, Verdict, VersionFigures, judge_canary
from hub.storage import schema
from hub.storage.core import StoreBase
from hub.storage.db import utcnow
from protocol.model_release import ModelRelease, inline_release

Kind = Literal["fewshot", "onnx"]
REVIEWED = frozenset(s.value for s in CaseStatus) - {CaseStatus.PENDING_REVIEW.value}


class ReleaseError(ValueError):
    """A registry request that cannot be done; the message says why (HTTP 409/404 at the API)."""


@dataclass(frozen=True)
class Release:
    release_id: int
    name: str
    kind: Kind
    sha256: str
    size: int
    backbone_sha256: str | None
    metrics: dict[str, Any]
    signature: str
    created_at: datetime
    created_by: str


def descriptor(release_id: int, name: str, kind: str, sha256: str, size: int, backbone: str | None) -> bytes:
    """The bytes the hub signs for a release (its identity, not where it travels)."""
    return json.dumps({"release_id": release_id, "name": name, "kind": kind, "sha256": sha256, "size": size,
                       "backbone_sha256": backbone}, sort_keys=True, separators=(",", ":")).encode()


def _release(row: Any) -> Release:
    return Release(row.release_id, row.name, row.kind, row.sha256, row.size, row.backbone_sha256,
                   dict(row.metrics or {}), row.signature, row.created_at, row.created_by)


def _audit(conn: Connection, actor: str, action: str, release_id: int | None, cameras: Sequence[str],
           note: str, rollout_id: int | None = None) -> None:
    conn.execute(schema.model_audit.insert().values(at=utcnow(), actor=actor, action=action, release_id=release_id,
                                                    rollout_id=rollout_id, cameras=list(cameras), note=note))


def register(store: StoreBase, content: bytes, *, name: str, kind: Kind, actor: str, key: HubSigningKey,
             metrics: dict[str, Any] | None = None, backbone_sha256: str | None = None) -> Release:
    """Store the file under its sha256 and add a signed release (the same file twice is refused)."""
    sha = hashlib.sha256(content).hexdigest()
    store.evidence.put(content, sha)

    def tx(conn: Connection) -> int:
        if conn.execute(select(schema.model_releases.c.release_id).where(schema.model_releases.c.sha256 == sha)
                        ).first():
            raise ReleaseError(f"a release with sha256 {sha[:12]}… is already registered")
        release_id = conn.execute(schema.model_releases.insert().values(
            name=name, kind=kind, sha256=sha, size=len(content), backbone_sha256=backbone_sha256,
            metrics=metrics or {}, signature="", created_at=utcnow(), created_by=actor)).inserted_primary_key[0]  # type: ignore[index]  # an INSERT's key
        signature = key.sign(descriptor(release_id, name, kind, sha, len(content), backbone_sha256)).hex()
        conn.execute(update(schema.model_releases).where(schema.model_releases.c.release_id == release_id)
                     .values(signature=signature))
        _audit(conn, actor, "register", release_id, [], f"{name} ({kind}, {len(content)} bytes)")
        return int(release_id)

    return get(store, store.write(tx))


def _one(store: StoreBase, table: Any, key: str, value: int, what: str) -> Any:
    with store.engine.connect() as conn:
        row = conn.execute(select(table).where(table.c[key] == value)).first()
    if row is None:
        raise LookupError(f"no {what} {value}")
    return row


def get(store: StoreBase, release_id: int) -> Release:
    return _release(_one(store, schema.model_releases, "release_id", release_id, "model release"))


def by_sha256(store: StoreBase) -> dict[str, Release]:
    with store.engine.connect() as conn:
        return {r.sha256: _release(r) for r in conn.execute(select(schema.model_releases))}


def wire_release(store: StoreBase, release: Release) -> ModelRelease:
    """What a model push carries: few-shot heads inline; detectors by url (fetched with device credentials)."""
    if release.kind == "fewshot":
        return inline_release(release.name, release.release_id, "fewshot", store.evidence_bytes(release.sha256),
                              backbone_sha256=release.backbone_sha256)
    return ModelRelease(name=release.name, release_id=release.release_id, kind="onnx", sha256=release.sha256,
                        size=release.size, url=f"/models/releases/{release.release_id}/file")


def release_for_device(store: StoreBase, release_id: int, device_id: str) -> Release:
    """The release a device may download: one the hub has pushed to it (any status: a device retrying a
    push it has not answered yet is still entitled to its file). LookupError otherwise, so a device
    can't probe for releases it was never sent."""
    p = schema.model_pushes
    with store.engine.connect() as conn:
        pushed = conn.execute(select(p.c.version).where(p.c.device_id == device_id, p.c.release_id == release_id)
                              .limit(1)).first()
    if pushed is None:
        raise LookupError(f"release {release_id} was never pushed to device {device_id}")
    return get(store, release_id)


def assignments(store: StoreBase) -> dict[str, int]:
    """camera id -> the release it should run."""
    with store.engine.connect() as conn:
        return {r.camera_id: r.release_id for r in conn.execute(select(schema.model_assignments))}


def _assign(conn: Connection, cameras: Sequence[str], release_id: int, stage: str, actor: str) -> None:
    """Set the cameras' release and queue a model push for each device whose release changed."""
    a = schema.model_assignments
    now = utcnow()
    for camera_id in cameras:
        previous = conn.execute(select(a.c.release_id).where(a.c.camera_id == camera_id)).scalar()
        if previous is None:
            conn.execute(a.insert().values(camera_id=camera_id, release_id=release_id, previous_release_id=None,
                                           stage=stage, assigned_at=now, assigned_by=actor))
        else:
            conn.execute(update(a).where(a.c.camera_id == camera_id).values(
                release_id=release_id, previous_release_id=previous, stage=stage, assigned_at=now, assigned_by=actor))
    pushes.queue_for_devices(conn, pushes.devices_of(conn, cameras), actor)


def deploy(store: StoreBase, release_id: int, cameras: Sequence[str], actor: str) -> None:
    """Run a release on cameras at once (a first model, or an operator's choice); audited."""
    get(store, release_id)

    def tx(conn: Connection) -> None:
        _assign(conn, cameras, release_id, "fleet", actor)
        _audit(conn, actor, "deploy", release_id, cameras, "")

    store.write(tx)


def _cameras_of(conn: Connection) -> list[str]:
    return [r[0] for r in conn.execute(select(schema.cameras.c.camera_id).order_by(schema.cameras.c.camera_id))]


@dataclass(frozen=True)
class Rollout:
    rollout_id: int
    release_id: int
    previous_release_id: int | None
    canary: list[str]
    rest: list[str]
    status: str  # canary, promoted, rolled_back
    policy: RolloutPolicy
    baseline_detect_ms: float | None
    started_at: datetime
    decided_at: datetime | None
    reason: str


def _rollout(row: Any) -> Rollout:
    return Rollout(row.rollout_id, row.release_id, row.previous_release_id, list(row.canary), list(row.rest),
                   row.status, RolloutPolicy.model_validate(row.policy), row.baseline_detect_ms, row.started_at,
                   row.decided_at, row.reason or "")


def _mean_detect_ms(conn: Connection, cameras: Sequence[str]) -> tuple[float | None, int]:
    """The cameras' latest detect time from their heartbeats (health.inference_ms), and how many report one."""
    values = []
    for row in conn.execute(select(schema.cameras.c.health).where(schema.cameras.c.camera_id.in_(list(cameras)))):
        ms = (row.health or {}).get("inference_ms")
        if ms:
            values.append(float(ms))
    return (sum(values) / len(values) if values else None), len(values)


def start_rollout(store: StoreBase, release_id: int, canary: Sequence[str], actor: str, *,
                  rest: Sequence[str] | None = None, policy: RolloutPolicy | None = None) -> Rollout:
    """Put the release on the canary cameras; the others (`rest`, default every other known camera)
    follow when the canary is promoted."""
    if not canary:
        raise ReleaseError("name at least one canary camera")
    get(store, release_id)
    policy = policy or RolloutPolicy()

    def tx(conn: Connection) -> int:
        r = schema.model_rollouts
        if conn.execute(select(r.c.rollout_id).where(r.c.status == "canary")).first():
            raise ReleaseError("a rollout is already in its canary stage: promote or roll it back first")
        current = {row.camera_id: row.release_id for row in conn.execute(select(schema.model_assignments))}
        previous = {current.get(c) for c in canary}
        if len(previous) != 1:
            raise ReleaseError(f"the canary cameras run different releases ({sorted(map(str, previous))}): "
                               "a canary is judged against one")
        if None in previous:
            raise ReleaseError(f"camera(s) {', '.join(c for c in canary if c not in current)} run no hub release "
                               "yet: deploy a first release to them; a rollout replaces one (and can go back to it)")
        others = list(rest) if rest is not None else [c for c in _cameras_of(conn) if c not in canary]
        baseline, _ = _mean_detect_ms(conn, canary)
        rollout_id = conn.execute(r.insert().values(
            release_id=release_id, previous_release_id=previous.pop(), canary=list(canary), rest=others,
            status="canary", policy=policy.model_dump(), baseline_detect_ms=baseline, started_at=utcnow(),
            started_by=actor)).inserted_primary_key[0]  # type: ignore[index]  # an INSERT's key
        _assign(conn, canary, release_id, "canary", actor)
        _audit(conn, actor, "canary", release_id, canary, f"rollout {rollout_id}", rollout_id)
        return int(rollout_id)

    return rollout(store, store.write(tx))


def rollout(store: StoreBase, rollout_id: int) -> Rollout:
    return _rollout(_one(store, schema.model_rollouts, "rollout_id", rollout_id, "rollout"))


def version_figures(store: StoreBase, sha256: str, cameras: Sequence[str], since: datetime | None,
                    detect: tuple[float | None, int] = (None, 0)) -> VersionFigures:
    """Reviewed and voided cases whose events came from this model version on these cameras."""
    verdicts = _case_verdicts(store, cameras, since)
    reviewed = voided = 0
    for (sha, _class_id), counts in verdicts.items():
        if sha == sha256:
            reviewed += counts["reviewed"]
            voided += counts["void"]
    hours = (utcnow() - since).total_seconds() / 3600 if since else 0.0
    return VersionFigures(reviewed, voided, detect[0], detect[1], hours)


def _case_verdicts(store: StoreBase, cameras: Sequence[str] | None, since: datetime | None,
                   names: dict[str, str] | None = None) -> dict[tuple[str, str], Counter]:
    """(model sha256, class id) -> counts of reviewed, void and filed-or-later cases (each case once, under the
    model of its first event)."""
    e, c = schema.events, schema.cases
    query = (select(e.c.case_id, e.c.payload, c.c.status, c.c.class_id).join(c, c.c.case_id == e.c.case_id)
             .order_by(e.c.case_id, e.c.observed_at, e.c.id))
    if cameras is not None:
        query = query.where(e.c.camera_id.in_(list(cameras)))
    if since is not None:
        query = query.where(e.c.observed_at >= since)
    out: dict[tuple[str, str], Counter] = {}
    seen: set[str] = set()
    with store.engine.connect() as conn:
        for row in conn.execute(query):
            if row.case_id in seen:
                continue
            seen.add(row.case_id)
            payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
            model = (payload or {}).get("model") or {}
            sha = model.get("sha256")
            if not sha:
                continue
            if names is not None:
                names.setdefault(sha, str(model.get("name") or ""))
            counts = out.setdefault((sha, row.class_id), Counter())
            if row.status in REVIEWED:
                counts["reviewed"] += 1
                counts["void" if row.status == CaseStatus.VOID.value else "confirmed"] += 1
            else:
                counts["pending"] += 1
    return out


def judge(store: StoreBase, rollout_id: int, actor: str = "system:rollout") -> Judgement:
    """Compare the canary with the release it replaced; promote or roll back (audited), or wait."""
    current = rollout(store, rollout_id)
    if current.status != "canary":
        return Judgement(Verdict.WAIT, f"rollout {rollout_id} is {current.status}")
    new_release = get(store, current.release_id)
    with store.engine.connect() as conn:
        refusals = _refusals(conn, current)
        new_detect = _mean_detect_ms(conn, current.canary)
    if refusals:  # a canary box could not take it (download, signature, sha256 or load failed): it runs the old one
        reason = "; ".join(f"device {device} refused it: {error}" for device, error in refusals)[:2000]
        _finish(store, current, "rolled_back", reason, actor)
        return Judgement(Verdict.ROLLBACK, reason)
    new = version_figures(store, new_release.sha256, current.canary, current.started_at, new_detect)
    if current.previous_release_id is not None:
        old_sha = get(store, current.previous_release_id).sha256
        old = version_figures(store, old_sha, current.canary + current.rest, None)
    else:
        old = VersionFigures()
    old = VersionFigures(old.reviewed, old.voided, current.baseline_detect_ms, 1, old.hours)
    judgement = judge_canary(old, new, current.policy)
    if judgement.verdict == Verdict.ROLLBACK:
        _finish(store, current, "rolled_back", judgement.reason, actor)
    elif judgement.verdict == Verdict.PROMOTE:
        _finish(store, current, "promoted", judgement.reason, actor)
    return judgement


def _refusals(conn: Connection, current: Rollout) -> list[tuple[str, str]]:
    """(device, error) of the canary's devices that rejected the push of the new release."""
    p = schema.model_pushes
    rows = conn.execute(select(p.c.device_id, p.c.error).where(
        p.c.device_id.in_(pushes.devices_of(conn, current.canary)), p.c.release_id == current.release_id,
        p.c.status == pushes.REJECTED, p.c.created_at >= current.started_at)).all()
    return [(r.device_id, r.error or "no reason given") for r in rows]


def _finish(store: StoreBase, current: Rollout, status: str, reason: str, actor: str) -> None:
    def tx(conn: Connection) -> None:
        r = schema.model_rollouts
        done = conn.execute(update(r).where(r.c.rollout_id == current.rollout_id, r.c.status == "canary")
                            .values(status=status, decided_at=utcnow(), reason=reason)).rowcount
        if not done:
            raise ReleaseError(f"rollout {current.rollout_id} was decided meanwhile")
        if status == "promoted":
            _assign(conn, current.rest, current.release_id, "fleet", actor)
            conn.execute(update(schema.model_assignments).where(
                schema.model_assignments.c.camera_id.in_(current.canary)).values(stage="fleet"))
            _audit(conn, actor, "promote", current.release_id, current.rest, reason, current.rollout_id)
        else:
            _restore(conn, current, actor, reason)

    store.write(tx)


def _restore(conn: Connection, current: Rollout, actor: str, reason: str) -> None:
    cameras = current.canary if current.status == "canary" else current.canary + current.rest
    assert current.previous_release_id is not None  # start_rollout refuses cameras without a release
    _assign(conn, cameras, current.previous_release_id, "fleet", actor)
    _audit(conn, actor, "rollback", current.previous_release_id, cameras,
           f"from release {current.release_id}: {reason}", current.rollout_id)


def rollback(store: StoreBase, rollout_id: int, actor: str, reason: str) -> Rollout:
    """Put every camera the rollout moved back on the release it replaced (canary or promoted); audited."""
    current = rollout(store, rollout_id)
    if current.status == "rolled_back":
        raise ReleaseError(f"rollout {rollout_id} is already rolled back")

    def tx(conn: Connection) -> None:
        r = schema.model_rollouts
        conn.execute(update(r).where(r.c.rollout_id == rollout_id).values(
            status="rolled_back", decided_at=utcnow(), reason=reason))
        _restore(conn, current, actor, reason)

    store.write(tx)
    return rollout(store, rollout_id)


def audit_rows(store: StoreBase, rollout_id: int | None = None) -> list[dict[str, Any]]:
    query = select(schema.model_audit).order_by(schema.model_audit.c.id)
    if rollout_id is not None:
        query = query.where(schema.model_audit.c.rollout_id == rollout_id)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def stats(store: StoreBase, since: datetime | None = None) -> list[dict[str, Any]]:
    """Precision per class per model version: confirmed / reviewed cases, with void and pending counts."""
    releases = by_sha256(store)
    names: dict[str, str] = {}
    verdicts = _case_verdicts(store, None, since, names)

    def order(key: tuple[str, str]) -> tuple[int, str, str]:  # versions in registry order, unregistered first
        release = releases.get(key[0])
        return (release.release_id if release else 0, key[0], key[1])

    rows = []
    for (sha, class_id) in sorted(verdicts, key=order):
        counts = verdicts[(sha, class_id)]
        release = releases.get(sha)
        reviewed = counts["reviewed"]
        rows.append({"sha256": sha, "release_id": release.release_id if release else None,
                     "name": release.name if release else names.get(sha) or None,
                     "created_at": release.created_at if release else None, "class_id": class_id,
                     "reviewed": reviewed,
                     "confirmed": counts["confirmed"], "void": counts["void"], "pending": counts["pending"],
                     "precision": counts["confirmed"] / reviewed if reviewed else None})
    return rows
