"""Model pushes from the hub: the agent side of a staged rollout.

A model push is the hub-signed `Push` that camera configs use (`protocol.push`), with kind `model`,
target `detector` (the agent's one model slot) and a `ModelRelease` as its body. The signature covers
the release, so the file's sha256 and size are the hub's word; `edge_agent.model_install` checks the
bytes against them, loads and warms the model up off the tick and swaps it in between two ticks. The
accepted release is kept on disk, so a restarted agent runs it (not the model in its YAML) and
reports it when the link comes up; the hub then pushes whatever the box missed, a rollback included.

`PushRouter` hands each push to the handler of its kind (camera configs to
`edge_agent.managed_config.ManagedConfigs`, models here).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from edge_agent.model_fetch import ModelFetcher
from edge_agent.model_install import install, load_release
from edge_agent.pipeline import DetectorLike
from edge_agent.spool import write_durable
from protocol.codec import PushMessage
from protocol.model_release import ModelRelease, ReleaseError
from protocol.push import ManagedBy, Push, PushIssue, PushKind, PushRefused, PushResult, open_push

log = logging.getLogger(__name__)

SLOT = "detector"
STATE_FILE = "model.json"


class ModelPushes:
    """The model this agent runs as the hub set it, and the pushes that change it."""

    def __init__(self, state_dir: Path, *, device_id: str, hub_sign_public: str | None,
                 threads: int | None = None, cache_dir: Path | None = None,
                 fetcher: ModelFetcher | None = None, sessions: int = 1, floor: float | None = None) -> None:
        """`fetcher` downloads releases announced by url (detectors); without it only inline ones load.
        `threads`, `sessions`, `floor`: how releases are loaded (see `edge_agent.fewshot.load_detector`)."""
        self.state_dir = state_dir
        self.fetcher = fetcher
        self._downloading: int | None = None  # the push version whose file is being downloaded
        self._late: queue.SimpleQueue[PushResult] = queue.SimpleQueue()
        self.device_id = device_id
        self.hub_sign_public = hub_sign_public
        self.threads, self.sessions, self.floor = threads, sessions, floor
        self.cache_dir = cache_dir
        self.version = 0
        self.release: ModelRelease | None = None
        self._swap: Callable[[DetectorLike], None] | None = None
        self._lock = threading.Lock()
        self._load_kept()

    def _load_kept(self) -> None:
        path = self.state_dir / STATE_FILE
        if not path.exists():
            return
        try:
            kept = json.loads(path.read_text(encoding="utf-8"))
            self.release = ModelRelease.model_validate(kept["release"])
            self.version = int(kept["version"])
        except (OSError, ValueError, KeyError) as exc:
            log.error("kept hub model %s is unusable, running the model in the camera config: %s", path, exc)

    def kept_detector(self) -> DetectorLike | None:
        """The release the hub last set, loaded (None: none kept, or it no longer loads)."""
        if self.release is None:
            return None
        try:
            return load_release(install(self.release, self.state_dir / "releases"), self.release,
                                threads=self.threads, cache_dir=self.cache_dir,
                                sessions=self.sessions, floor=self.floor)
        except (ReleaseError, ValueError, LookupError, OSError) as exc:
            log.error("kept hub model %s#%d does not load, running the model in the camera config: %s",
                      self.release.name, self.release.release_id, exc)
            self.release, self.version = None, 0
            return None

    def attach(self, swap: Callable[[DetectorLike], None]) -> None:
        """Accepted models go to `swap` (Pipeline.swap_detector, and whatever reports the model)."""
        self._swap = swap

    def handle(self, msg: PushMessage) -> PushResult | None:
        """The answer to a push, or None when it comes later (`late_results`: a detector being downloaded)."""
        push = msg.push
        try:
            open_push(bytes(msg.payload), bytes(msg.signature), self.hub_sign_public, self.device_id)
        except PushRefused as exc:
            log.error("model push v%d refused: %s", push.version, exc)
            return self._result(push, accepted=False, error=str(exc))
        if push.kind is not PushKind.MODEL or push.target != SLOT:
            return self._result(push, accepted=False, error=f"{push.kind.value} {push.target}: this agent takes "
                                f"models for the slot {SLOT!r} only")
        with self._lock:
            download = self._needs_download(push)
            if download is None:
                return self._apply(push)
            if self._downloading == push.version:
                return None  # a resend while its file is still coming: answered when it is in
            self._downloading = push.version
        threading.Thread(target=self._download_then_apply, args=(push, download), name=f"model-fetch-v{push.version}",
                         daemon=True).start()
        return None

    def _needs_download(self, push: Push) -> ModelRelease | None:
        """The release of a newer push whose file must still be downloaded (None: apply it now)."""
        if push.version <= self.version or self.fetcher is None:
            return None
        try:
            release = ModelRelease.model_validate(push.body)
        except ValidationError:
            return None  # _apply answers with the field errors
        if release.url is None or (self.state_dir / "releases" / f"{release.sha256}{release.suffix}").is_file():
            return None
        return release

    def _download_then_apply(self, push: Push, release: ModelRelease) -> None:
        """Off the link thread: a detector of megabytes must not hold up events and heartbeats."""
        try:
            assert self.fetcher is not None
            install(release, self.state_dir / "releases", self.fetcher.fetch(release))
            with self._lock:
                result = self._apply(push)
        except (ReleaseError, ValueError, OSError) as exc:
            log.error("model %s#%d (push v%d) not taken: %s", release.name, release.release_id, push.version, exc)
            result = self._result(push, accepted=False, error=str(exc)[:4000])
        finally:
            with self._lock:
                self._downloading = None
        self._late.put(result)

    def late_results(self) -> list[PushResult]:
        """Answers to pushes whose file was downloaded in the background, for the link to send."""
        out = []
        while not self._late.empty():
            out.append(self._late.get_nowait())
        return out

    def _apply(self, push: Push) -> PushResult:
        if push.version <= self.version:  # a resend, or an old push overtaken by a newer one
            return self._result(push, accepted=push.version == self.version,
                                error=None if push.version == self.version else f"version {push.version} is "
                                f"older than version {self.version} this agent runs")
        try:
            release = ModelRelease.model_validate(push.body)
        except ValidationError as exc:
            issues = [PushIssue(path=".".join(map(str, e["loc"])), message=e["msg"][:1000]) for e in exc.errors()]
            return self._result(push, accepted=False, error="; ".join(f"{i.path}: {i.message}" for i in issues),
                                issues=issues[:64])
        try:
            detector = load_release(install(release, self.state_dir / "releases", self._fetch(release)), release,
                                    threads=self.threads, cache_dir=self.cache_dir,
                                    sessions=self.sessions, floor=self.floor)
        except (ReleaseError, ValueError, LookupError, OSError) as exc:
            log.error("model %s#%d (push v%d) not taken: %s", release.name, release.release_id, push.version, exc)
            return self._result(push, accepted=False, error=str(exc)[:4000])
        if self._swap is not None:
            self._swap(detector)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        write_durable(self.state_dir / STATE_FILE, json.dumps(
            {"version": push.version, "issued_by": push.issued_by, "kept_at": datetime.now(UTC).isoformat(),
             "release": release.model_dump(mode="json")}, ensure_ascii=False).encode())
        self.release, self.version = release, push.version
        log.info("model %s#%d (push v%d by %s) in service", release.name, release.release_id, push.version,
                 push.issued_by)
        return self._result(push, accepted=True)

    def _fetch(self, release: ModelRelease) -> bytes | None:
        """Download a url release unless it is installed already (a resend, or a rollback to it)."""
        if release.url is None:
            return None
        path = self.state_dir / "releases" / f"{release.sha256}{release.suffix}"
        if path.is_file():
            return None  # install re-hashes it
        if self.fetcher is None:
            raise ReleaseError(f"release {release.name}#{release.release_id} must be downloaded from the hub, and "
                               "this agent has no hub API url (cityeye edge run --hub-url, or a bundle with api_url)")
        return self.fetcher.fetch(release)

    def _result(self, push: Push, *, accepted: bool, error: str | None = None,
                issues: list[PushIssue] | None = None) -> PushResult:
        return PushResult(device_id=self.device_id, kind=push.kind, target=push.target, version=push.version,
                          accepted=accepted, managed_by=ManagedBy.HUB, error=error, issues=issues or [],
                          current=self._current())

    def _current(self) -> dict | None:
        if self.release is None:
            return None
        return {"name": self.release.name, "release_id": self.release.release_id, "sha256": self.release.sha256}

    def reports(self) -> list[PushResult]:
        """The release the hub set (version 0: the model of the camera config), when the link comes up."""
        if not self.hub_sign_public:
            return []
        with self._lock:
            return [PushResult(device_id=self.device_id, kind=PushKind.MODEL, target=SLOT, version=self.version,
                               accepted=True, report=True, managed_by=ManagedBy.HUB if self.version else
                               ManagedBy.LOCAL, current=self._current())]


class Handler(Protocol):
    """What a push handler offers (ManagedConfigs, ModelPushes)."""

    def handle(self, msg: PushMessage) -> PushResult | None: ...
    def reports(self) -> list[PushResult]: ...


class PushRouter:
    """One push handler for the outbox: each push goes to the handler of its kind."""

    def __init__(self, handlers: Mapping[PushKind, Handler]) -> None:
        self.handlers = dict(handlers)

    def handle(self, msg: PushMessage) -> PushResult | None:
        handler = self.handlers.get(msg.push.kind)
        if handler is None:
            push = msg.push
            return PushResult(device_id=push.device_id, kind=push.kind, target=push.target, version=push.version,
                              accepted=False, error=f"kind {push.kind.value}: not handled by this agent")
        return handler.handle(msg)

    def reports(self) -> list[PushResult]:
        return [r for h in self.handlers.values() for r in h.reports()]

    def late_results(self) -> list[PushResult]:
        return [r for h in self.handlers.values() for r in getattr(h, "late_results", list)()]
