"""Evidence files, content-addressed by SHA-256 under the hub data dir.

The only path component ever derived from outside is the hash, and only after it matches
`^[0-9a-f]{64}$`; names sent by a client are metadata, never paths.

Durability: a file is written under a temporary name, its data is synced, it is renamed to its hash,
and the directory entry is synced, all before `put`/`put_many` returns (so before the database commit
that refers to it). `put_many` does this for a whole burst at once: the syncs run in parallel on a
small I/O pool, so the filesystem folds them into a few journal commits instead of one per file.
A file that is already there under its hash is re-read and re-hashed before being trusted, so a file
damaged by a crash is rewritten by the next copy of the same evidence instead of being kept forever.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
IO_THREADS = 16  # fsync is I/O wait: more threads let the journal batch more syncs per commit

Buffer = bytes | memoryview
T = TypeVar("T")


class EvidenceError(ValueError):
    """Evidence bytes do not match what their metadata claims."""


def check_sha256(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise EvidenceError(f"not a lowercase hex SHA-256: {sha256!r}")
    return sha256


class EvidenceStore:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync  # False: survives a hub crash (page cache), not a power cut; much faster
        root.mkdir(parents=True, exist_ok=True)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def path(self, sha256: str) -> Path:
        sha256 = check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: Buffer, expect_sha256: str | None = None) -> str:
        """Write `data` once (durably) and return its hash; refuse data that doesn't match."""
        result = self.put_many([(data, expect_sha256)], parallel=False)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def put_many(self, blobs: Sequence[tuple[Buffer, str | None]], *, parallel: bool = True
                 ) -> list[str | EvidenceError | OSError]:
        """Write each (data, expected SHA-256 or None) once; per blob its hash or its error.

        Every file reported written is durable (data and directory entry synced) when this returns.
        One blob's error (wrong hash, disk trouble) does not fail the others."""
        return self.finish(self.stage(blobs, parallel=parallel), parallel=parallel)

    def stage(self, blobs: Sequence[tuple[Buffer, str | None]], *, parallel: bool = True
              ) -> list[Staged | EvidenceError | OSError]:
        """First half of `put_many`: check hashes and write temp files (nothing visible, nothing synced)."""
        run = self._map if parallel and len(blobs) > 1 else _serial_map
        return run(self._stage, blobs)  # type: ignore[no-any-return]

    def finish(self, staged: Sequence[Staged | EvidenceError | OSError], *, parallel: bool = True
               ) -> list[str | EvidenceError | OSError]:
        """Second half of `put_many`: sync the temp files, rename them to their hashes, sync the directories."""
        run = self._map if parallel and len(staged) > 1 else _serial_map
        pending = [s for s in staged if isinstance(s, Staged) and s.tmp is not None]
        if pending:
            if self.fsync:
                for s, err in zip(pending, run(_sync_file, pending), strict=True):
                    s.error = err
            for s in pending:
                if s.error is None:
                    try:
                        os.replace(s.tmp, s.target)  # type: ignore[arg-type]  # atomic
                    except OSError as exc:
                        s.error = exc
                if s.error is not None:
                    Path(s.tmp).unlink(missing_ok=True)  # type: ignore[arg-type]
            if self.fsync:
                dirs = sorted({d for s in pending if s.error is None for d in s.dirs_to_sync(self.root)})
                failed = {d: e for d, e in zip(dirs, run(_sync_dir, dirs), strict=True) if e is not None}
                for s in pending:
                    bad = [failed[d] for d in s.dirs_to_sync(self.root) if d in failed]
                    if s.error is None and bad:
                        s.error = bad[0]
        out: list[str | EvidenceError | OSError] = []
        for s in staged:
            if isinstance(s, Staged):
                out.append(s.error if s.error is not None else s.digest)
            else:
                out.append(s)
        return out

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run `fn` on the evidence I/O pool (e.g. `finish` while the database does its part)."""
        return self._executor().submit(fn, *args)

    def _stage(self, blob: tuple[Buffer, str | None]) -> Staged | EvidenceError | OSError:
        """Hash, and unless a good copy exists, write to a temp file (not yet synced or renamed)."""
        data, expect = blob
        digest = hashlib.sha256(data).hexdigest()
        if expect is not None and digest != expect:
            return EvidenceError(f"content hash {digest} does not match the declared {expect}")
        target = self.path(digest)
        try:
            if _intact(target, digest, len(data)):
                return Staged(digest, target, None)
            new_dir = not target.parent.is_dir()
            if new_dir:
                target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            return exc
        return Staged(digest, target, tmp, new_dir)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="evidence-io")
            return self._pool

    def _map(self, fn, items):  # type: ignore[no-untyped-def]
        return list(self._executor().map(fn, items))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()


class Staged:
    """A blob whose hash is checked: `tmp` holds its bytes until `finish`, or None when already stored."""

    __slots__ = ("digest", "error", "new_dir", "target", "tmp")

    def __init__(self, digest: str, target: Path, tmp: str | None, new_dir: bool = False) -> None:
        self.digest, self.target, self.tmp, self.new_dir = digest, target, tmp, new_dir
        self.error: OSError | None = None

    def dirs_to_sync(self, root: Path) -> list[Path]:
        """The file's directory, and when it was just created, the entries that lead to it."""
        leaf = self.target.parent
        return [leaf, leaf.parent, root] if self.new_dir else [leaf]


def _serial_map(fn, items):  # type: ignore[no-untyped-def]
    return [fn(i) for i in items]


def _intact(target: Path, digest: str, size: int) -> bool:
    """A file already stored under `digest` with exactly that content (rare: a resent event)."""
    try:
        if target.stat().st_size != size:
            return False
        return hashlib.sha256(target.read_bytes()).hexdigest() == digest
    except FileNotFoundError:
        return False


def _sync_file(staged: Staged) -> OSError | None:
    try:
        fd = os.open(staged.tmp, os.O_RDONLY)  # type: ignore[arg-type]
        try:
            _datasync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return exc
    return None


_datasync = getattr(os, "fdatasync", os.fsync)


def _sync_dir(path: Path) -> OSError | None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return exc
    return None
