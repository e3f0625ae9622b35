"""Install a model release the hub pushed and hand it to the running pipeline.

The file is checked against the sha256 and size the hub signed (`protocol.model_release`), written
under its hash (`<root>/<sha256>.json|.onnx`, so two releases never overwrite each other and the one
in service is never touched), loaded, and warmed up on a blank frame, all off the pipeline's thread;
only then does `Pipeline.swap_detector` switch to it between two ticks, so no frame waits for a load.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from edge_agent.fewshot import load_detector
from edge_agent.pipeline import DetectorLike, Pipeline
from protocol.model_release import ModelRelease, ReleaseError, verified_content

log = logging.getLogger(__name__)


def release_path(root: Path, release: ModelRelease) -> Path:
    return root / f"{release.sha256}{release.suffix}"


def install(release: ModelRelease, root: Path, fetched: bytes | None = None) -> Path:
    """Write the verified file under its hash (idempotent); returns its path. A file already there (a kept
    release at restart) is re-hashed, not trusted by its name."""
    path = release_path(root, release)
    if fetched is None and release.content_b64 is None and path.is_file():
        verified_content(release, path.read_bytes())
        return path
    content = verified_content(release, fetched)
    if path.is_file() and path.stat().st_size == release.size:
        return path
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    with tmp.open("wb") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    return path


def load_release(path: Path, release: ModelRelease, *, threads: int | None = None,
                 cache_dir: Path | None = None, sessions: int = 1, floor: float | None = None) -> DetectorLike:
    """Load and warm up the installed release; the detector reports the release's name and sha256.
    `floor`: as `load_detector`'s (the weaker boxes the trackers' second stage takes)."""
    detector, _ = load_detector(path, threads=threads, cache_dir=cache_dir, sessions=sessions, floor=floor)
    manifest = detector.manifest
    if release.kind == "onnx":  # an ONNX file reports the release's name (its manifest may name it otherwise)
        detector.manifest = manifest.model_copy(update={"name": release.name, "sha256": release.sha256})
    elif manifest.name != release.name or manifest.sha256 != release.sha256:
        raise ReleaseError(f"release {release.name}#{release.release_id}: the head file is named "
                           f"{manifest.name} (sha256 {str(manifest.sha256)[:12]}…)")
    spec = manifest.input
    detector.detect([np.zeros((spec.height, spec.width, 3), np.uint8)])  # first run allocates: not on a tick
    return detector


def apply_release(pipeline: Pipeline, release: ModelRelease, root: Path, *, fetched: bytes | None = None,
                  threads: int | None = None, cache_dir: Path | None = None, sessions: int = 1) -> DetectorLike:
    """Install, load, warm up, then swap between ticks; raises ReleaseError (or a load error) and keeps
    the model in service when anything fails."""
    path = install(release, root, fetched)
    detector = load_release(path, release, threads=threads, cache_dir=cache_dir, sessions=sessions)
    pipeline.swap_detector(detector)
    log.info("model %s#%d (sha256 %s…) in service", release.name, release.release_id, release.sha256[:12])
    return detector
