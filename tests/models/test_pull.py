"""Pulling a model over real HTTP from a local registry stand-in: integrity, retries, cache."""

from __future__ import annotations

import base64
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from models.cache import cached, resolve
from models.pull import PullError, download_verified, pull
from tests.models.tfjs_tiny import tiny_tarball

TARBALL = tiny_tarball()
NO_SLEEP = lambda s: None  # noqa: E731
INTEGRITY = "sha512-" + base64.b64encode(hashlib.sha512(TARBALL).digest()).decode()


class Registry:
    """Serves the tarball; `faults` is a list of what to do on successive requests."""

    def __init__(self) -> None:
        self.requests = 0
        self.faults: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                registry.requests += 1
                fault = registry.faults.pop(0) if registry.faults else "ok"
                if fault == "404":
                    self.send_error(404)
                    return
                body = TARBALL
                if fault == "corrupt":
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.send_response(200)
                self.send_header("Content-Length", str(len(TARBALL)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if fault == "truncate" else body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry(monkeypatch):
    reg = Registry()
    monkeypatch.setenv("CITYEYE_NPM_REGISTRY", reg.url)
    yield reg
    reg.close()


@pytest.fixture
def manifest_path(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny", "labels": ["thing"],
        "input": {"width": 8, "height": 8},
        "decoder": {"type": "yolo"},
        "source": {"kind": "npm", "package": "@example/tiny", "version": "1.0.0", "integrity": INTEGRITY,
                   "graph": "package/tiny.json",
                   "members": ["package/tiny.json", "package/tiny.bin", "package/LICENSE"]},
    }))
    return path


def test_pull_converts_caches_and_reuses(registry, manifest_path, tmp_path):
    root = tmp_path / "cache"
    first = pull("tiny", root=root, manifest_path=manifest_path, progress=False, sleep=NO_SLEEP)
    assert first.onnx_path.is_file() and first.manifest.sha256
    assert (first.onnx_path.parent / "LICENSE").read_text() == "MIT\n"
    assert registry.requests == 1
    second = pull("tiny", root=root, manifest_path=manifest_path, progress=False, sleep=NO_SLEEP)
    assert registry.requests == 1, "a second pull must use the cache"
    assert second.manifest.sha256 == first.manifest.sha256
    assert resolve("tiny", root).onnx_path == first.onnx_path


def test_corrupt_and_truncated_downloads_are_retried_never_used(registry, manifest_path, tmp_path):
    registry.faults = ["corrupt", "truncate"]
    resolved = pull("tiny", root=tmp_path / "cache", manifest_path=manifest_path, progress=False, sleep=NO_SLEEP)
    assert registry.requests == 3
    assert resolved.onnx_path.is_file()


def test_persistent_corruption_fails_and_caches_nothing(registry, manifest_path, tmp_path):
    registry.faults = ["corrupt"] * 3
    root = tmp_path / "cache"
    with pytest.raises(PullError, match="sha512 mismatch"):
        pull("tiny", root=root, manifest_path=manifest_path, progress=False, sleep=NO_SLEEP)
    assert cached("tiny", root) is None
    assert not list((root / "tiny").glob("*.onnx"))


def test_missing_package_is_not_retried(registry, tmp_path):
    registry.faults = ["404"]
    with pytest.raises(PullError, match="HTTP 404"):
        download_verified(f"{registry.url}/x.tgz", INTEGRITY, tmp_path / "x.tgz", progress=False, sleep=lambda s: None)
    assert registry.requests == 1


def test_offline_gives_a_clear_error(tmp_path):
    with pytest.raises(PullError, match="cannot download .*mirror"):
        download_verified("http://127.0.0.1:9/x.tgz", INTEGRITY, tmp_path / "x.tgz", attempts=2, progress=False,
                          sleep=lambda s: None)


def test_corrupted_cached_model_is_not_used(registry, manifest_path, tmp_path):
    root = tmp_path / "cache"
    resolved = pull("tiny", root=root, manifest_path=manifest_path, progress=False, sleep=NO_SLEEP)
    resolved.onnx_path.write_bytes(resolved.onnx_path.read_bytes()[:-1])
    assert cached("tiny", root) is None
    pull("tiny", root=root, manifest_path=manifest_path, progress=False, sleep=NO_SLEEP)
    assert registry.requests == 2 and cached("tiny", root) is not None


def test_local_tarball_is_integrity_checked(manifest_path, tmp_path):
    good = tmp_path / "good.tgz"
    good.write_bytes(TARBALL)
    assert pull("tiny", root=tmp_path / "c1", manifest_path=manifest_path, tarball=good, progress=False)
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(TARBALL[:-5] + b"xxxxx")
    with pytest.raises(PullError, match="does not match"):
        pull("tiny", root=tmp_path / "c2", manifest_path=manifest_path, tarball=bad, progress=False)
