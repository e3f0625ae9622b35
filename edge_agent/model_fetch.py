"""Download a detector file the hub announced in a signed model push (`ModelRelease.url`).

The request is signed with the device's enrolled Ed25519 key (protocol.device_auth), so the hub serves
the file only to a device it pushed the release to. Bytes go to `<root>/.<sha256>.onnx.part`; a broken
download resumes from what is there (HTTP Range) on the next attempt, attempts are retried with
backoff, and the result is only returned once its size and sha256 are the ones the hub signed (a
tampered or truncated file is deleted and refused). `edge_agent.model_push` runs it on a thread of its
own, so events and heartbeats keep flowing and the pipeline keeps the model in service meanwhile; the
push is answered once the new model is loaded and swapped in (or refused).
"""

from __future__ import annotations

import hashlib
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from protocol.device_auth import sign_request
from protocol.manifest import Signer
from protocol.model_release import ModelRelease, ReleaseError

log = logging.getLogger(__name__)
CHUNK = 1 << 20


class ModelFetcher:
    """Fetches release files from the hub's HTTP(S) API as one device."""

    def __init__(self, api_url: str, device_id: str, signer: Signer, root: Path, *, attempts: int = 4,
                 timeout_s: float = 30.0, backoff_s: float = 1.0,
                 on_progress: Callable[[ModelRelease, int], None] | None = None) -> None:
        if urlsplit(api_url).scheme not in ("http", "https"):
            raise ValueError(f"hub api url must be http(s)://..., got {api_url!r}")
        self.api_url = api_url.rstrip("/") + "/"
        self.device_id = device_id
        self.signer = signer
        self.root = root
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.on_progress = on_progress

    def url_of(self, release: ModelRelease) -> str:
        assert release.url is not None
        return urljoin(self.api_url, release.url.lstrip("/")) if not urlsplit(release.url).scheme else release.url

    def fetch(self, release: ModelRelease) -> bytes:
        """The release's file, verified against the signed size and sha256; ReleaseError after the last try."""
        if release.url is None:
            raise ReleaseError(f"release {release.name}#{release.release_id} has no url to fetch")
        part = self.root / f".{release.sha256}{release.suffix}.part"
        self.root.mkdir(parents=True, exist_ok=True)
        error = ""
        for attempt in range(1, self.attempts + 1):
            try:
                self._download(release, part)
                return self._verified(release, part)
            except ReleaseError:
                raise  # the hub served other bytes than it signed: trying again would fetch them again
            except (OSError, urllib.error.URLError) as exc:
                error = _describe(exc)
                log.warning("model %s#%d: download attempt %d/%d failed: %s", release.name, release.release_id,
                            attempt, self.attempts, error)
                if isinstance(exc, urllib.error.HTTPError) and exc.code in (401, 403, 404):
                    break  # the hub refused this device: no retry changes that
                if attempt < self.attempts:
                    time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise ReleaseError(f"release {release.name}#{release.release_id}: could not download {self.url_of(release)} "
                           f"after {attempt} attempt(s): {error}")

    def _download(self, release: ModelRelease, part: Path) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have >= release.size:
            return
        url = self.url_of(release)
        headers = sign_request(self.signer, self.device_id, "GET", urlsplit(url).path)
        if have:
            headers["Range"] = f"bytes={have}-"
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=self.timeout_s) as resp:
            mode = "ab" if have and resp.status == 206 else "wb"  # a server that ignores Range sends it all
            have = have if mode == "ab" else 0
            with part.open(mode) as fh:
                while have < release.size:
                    chunk = resp.read(min(CHUNK, release.size - have))
                    if not chunk:
                        break
                    fh.write(chunk)
                    have += len(chunk)
                    if self.on_progress:
                        self.on_progress(release, have)
        if have < release.size:
            raise OSError(f"connection closed after {have} of {release.size} bytes")

    def _verified(self, release: ModelRelease, part: Path) -> bytes:
        content = part.read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        if len(content) != release.size or digest != release.sha256:
            part.unlink(missing_ok=True)  # never resume onto bytes that are not the signed file
            raise ReleaseError(f"release {release.name}#{release.release_id}: downloaded {len(content)} bytes with "
                               f"sha256 {digest[:12]}…, the hub signed {release.size} bytes with "
                               f"{release.sha256[:12]}…: refused")
        part.unlink(missing_ok=True)
        return content


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        body = exc.read()[:300].decode("utf-8", "replace")
        return f"HTTP {exc.code} {body}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc)
