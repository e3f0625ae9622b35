"""Evidence files, content-addressed by SHA-256 under the hub data dir.

The only path component ever derived from outside is the hash, and only after it matches
`^[0-9a-f]{64}$`; names sent by a client are metadata, never paths.

Durability: `stage` writes each file under a temporary name and renames it to its hash (atomic, so a
reader never sees half a file); `finish` then syncs the file's data and its directory entries. Both
happen before `put`/`put_many` returns, so before the database commit that refers to the file. For a
burst the syncs run in parallel on a small I/O pool, in one round, so the filesystem folds them into
a few journal commits instead of one or two per file.

A crash between rename and sync can leave a file under its hash whose bytes never reached the disk;
no committed event refers to it (the commit waits for the sync), and the next copy of that evidence
finds it: a file that is already there is re-read and re-hashed before being trusted (and rewritten
when damaged), and synced again like a new one, so an event is never committed on another writer's
unsynced file.
"""

from __future__ import annotations

import hashlib
import os
import re
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

    def stage(self, blobs: Sequence[tuple[Buffer, str | None]], *, parallel: bool = True,
              digests: Sequence[str | None] | None = None) -> list[Staged | EvidenceError | OSError]:
        """First half of `put_many`: check hashes, write and rename the files (nothing synced yet).
        `digests`: per blob the SHA-256 the caller already computed from these very bytes (not hashed
        again; still compared with the expected one), or None."""
        known = digests if digests is not None else [None] * len(blobs)
        run = self._map if parallel and len(blobs) > 1 else _serial_map
        return run(lambda job: self._stage(*job), list(zip(blobs, known, strict=True)))  # type: ignore[no-any-return]

    def finish(self, staged: Sequence[Staged | EvidenceError | OSError], *, parallel: bool = True
               ) -> list[str | EvidenceError | OSError]:
        """Second half of `put_many`: sync the files' data and their directories, all in one round."""
        run = self._map if parallel and len(staged) > 1 else _serial_map
        good = [s for s in staged if isinstance(s, Staged)]
        if self.fsync and good:
            files = sorted({s.target for s in good})
            dirs = sorted({d for s in good for d in s.dirs_to_sync(self.root)})
            errors = dict(zip(files + dirs, run(_sync_path, files + dirs), strict=True))
            for s in good:
                bad = [errors[p] for p in (s.target, *s.dirs_to_sync(self.root)) if errors[p] is not None]
                s.error = bad[0] if bad else None
        return [(s.error if s.error is not None else s.digest) if isinstance(s, Staged) else s for s in staged]

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run `fn` on the evidence I/O pool (e.g. `finish` while the database does its part)."""
        return self._executor().submit(fn, *args)

    def _stage(self, blob: tuple[Buffer, str | None], known: str | None) -> Staged | EvidenceError | OSError:
        data, expect = blob
        digest = known if known is not None else hashlib.sha256(data).hexdigest()
        if expect is not None and digest != expect:
            return EvidenceError(f"content hash {digest} does not match the declared {expect}")
        target = self.path(digest)
        try:
            if _intact(target, digest, len(data)):
                return Staged(digest, target)
            new_dir = not target.parent.is_dir()
            if new_dir:
                target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.parent / f".tmp-{digest[:16]}-{threading.get_ident()}-{os.getpid()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, target)  # atomic; concurrent writers of the same hash write equal bytes
        except OSError as exc:
            return exc
        return Staged(digest, target, new_dir)

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
    """A blob under its hash (written now, or found intact), waiting for `finish` to sync it."""

    __slots__ = ("digest", "error", "new_dir", "target")

    def __init__(self, digest: str, target: Path, new_dir: bool = False) -> None:
        self.digest, self.target, self.new_dir = digest, target, new_dir
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


_datasync = getattr(os, "fdatasync", os.fsync)


def _sync_path(path: Path) -> OSError | None:
    """fdatasync a file, fsync a directory; the error instead of raising it."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            (os.fsync if path.is_dir() else _datasync)(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return exc
    return None
