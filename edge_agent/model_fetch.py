"""Download a detector file the hub announced in a signed model push (`ModelRelease.url`).

The request is signed with the device's enrolled Ed25519 key (protocol.device_auth), so the hub serves
the file only to a device it pushed the release to. Bytes go to `<root>/.<sha256>.onnx.part`; a broken
download resumes from what is there (HTTP Range) on the next attempt, attempts are retried with
backoff, and the result is only returned once its size and sha256 are the ones the hub signed (a
tampered or truncated file is deleted and refused). `edge_agent.model_push` runs it on a thread of its
own, so events and heartbeats keep flowing and the pipeline keeps the model in service meanwhile; the
push is answered once the new model is loaded and swapped in (or refused).

Over https the hub's certificate and host name are verified against the bureau's CA (the bundle's `api_ca`,
`edge run --hub-ca`) or the system's trust store; a certificate that does not verify refuses the release at
once (no retry, never a fallback to plain HTTP), with the reason in the log and the push's answer.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from protocol.bundle import trust_context
from protocol.device_auth import sign_request
from protocol.manifest import Signer
from protocol.model_release import ModelRelease, ReleaseError

log = logging.getLogger(__name__)
CHUNK = 1 << 20


class ModelFetcher:
    """Fetches release files from the hub's HTTP(S) API as one device."""

    def __init__(self, api_url: str, device_id: str, signer: Signer, root: Path, *, attempts: int = 4,
                 timeout_s: float = 30.0, backoff_s: float = 1.0,
                 on_progress: Callable[[ModelRelease, int], None] | None = None, ca_pem: str | None = None) -> None:
        if urlsplit(api_url).scheme not in ("http", "https"):
            raise ValueError(f"hub api url must be http(s)://..., got {api_url!r}")
        self.tls = trust_context(ca_pem)  # ValueError when ca_pem holds no CA certificate
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

    def _check_scheme(self, release: ModelRelease) -> None:
        if urlsplit(self.api_url).scheme == "https" and urlsplit(self.url_of(release)).scheme != "https":
            raise ReleaseError(f"release {release.name}#{release.release_id}: {self.url_of(release)} is not https "
                               f"while the hub's API is {self.api_url}: refused (no plain-HTTP download)")

    def fetch(self, release: ModelRelease) -> bytes:
        """The release's file, verified against the signed size and sha256; ReleaseError after the last try."""
        if release.url is None:
            raise ReleaseError(f"release {release.name}#{release.release_id} has no url to fetch")
        self._check_scheme(release)
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
                if _untrusted(exc):
                    break  # the same certificate comes back on every try
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
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=self.timeout_s, context=self.tls) as resp:
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


def _untrusted(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return reason if isinstance(reason, ssl.SSLCertVerificationError) else None


def _describe(exc: BaseException) -> str:
    untrusted = _untrusted(exc)
    if untrusted is not None:  # e.g. "unable to get local issuer certificate", "Hostname mismatch, ..."
        return (f"TLS: the hub's certificate is not trusted ({untrusted.verify_message or untrusted}); the bureau's "
                "CA goes in the bundle (hub enroll --api-ca) or edge run --hub-ca")
    if isinstance(exc, urllib.error.HTTPError):
        body = exc.read()[:300].decode("utf-8", "replace")
        return f"HTTP {exc.code} {body}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc)
