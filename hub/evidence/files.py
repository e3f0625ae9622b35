"""Evidence files, content-addressed by SHA-256 under the hub data dir.

The only path component ever derived from outside is the hash, and only after it matches
`^[0-9a-f]{64}$`; names sent by a client are metadata, never paths.

Durability: `stage` creates each file under its hash (O_EXCL; a failed write removes it, so a reader never
sees half a file under a hash name); `finish` then makes the whole burst durable, data and directory entries,
before `put`/`put_many` returns, so before the database commit that refers to the files. On Linux that
is ONE `syncfs(2)` of the evidence filesystem per burst: one journal commit for the lot, instead of a
data sync per file and a directory sync per leaf (per-file syncs cost more than everything else ingest
does, and the journal would serialise them anyway). Elsewhere each file and directory is synced.
`syncfs` also flushes whatever else is dirty on that filesystem; on a hub that is the database, which
it syncs anyway.

Once synced, a burst's files leave the page cache (`POSIX_FADV_DONTNEED`). Evidence is written once and
read rarely (a reviewer opens a case; a package is exported); a hub writing up to ~200 MB/s of it would
otherwise fill memory with it and push out the database's pages. It also keeps ingest cheap: the next
files reuse the pages just freed, while a page cache that keeps growing takes fresh pages for every
file, and on a virtual machine the first touch of a fresh page costs the host a fault (measured: writing
a new 93 KB file took 224-275 µs of CPU with the cache growing, 110-130 µs with the pages dropped after
each sync; dropping costs ~12 µs a file).

A crash between the write and the sync can leave a file under its hash whose bytes never reached the disk;
no committed event refers to it (the commit waits for the sync), and the next copy of that evidence
finds it: a file that is already there is re-read and re-hashed before being trusted (and rewritten
when damaged), and synced again with the burst, so an event is never committed on another writer's
unsynced file.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from hub.storage.fsync import sync_path

log = logging.getLogger(__name__)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

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
        self._root = str(root)
        self.fsync = fsync  # False: survives a hub crash (page cache), not a power cut; much faster
        root.mkdir(parents=True, exist_ok=True)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def path(self, sha256: str) -> Path:
        return Path(self._file(check_sha256(sha256)))

    def _file(self, sha256: str) -> str:
        return os.path.join(self._root, sha256[:2], sha256[2:4], sha256)

    def put(self, data: Buffer, expect_sha256: str | None = None) -> str:
        """Write `data` once (durably) and return its hash; refuse data that doesn't match."""
        result = self.put_many([(data, expect_sha256)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def put_many(self, blobs: Sequence[tuple[Buffer, str | None]]) -> list[str | EvidenceError | OSError]:
        """Write each (data, expected SHA-256 or None) once; per blob its hash or its error.

        Every file reported written is durable (data and directory entry synced) when this returns.
        One blob's error (wrong hash, disk trouble) does not fail the others."""
        return self.finish(self.stage(blobs))

    def stage(self, blobs: Sequence[tuple[Buffer, str | None]], *,
              digests: Sequence[str | None] | None = None) -> list[Staged | EvidenceError | OSError]:
        """First half of `put_many`: check hashes and write the files (nothing synced yet).
        `digests`: per blob the SHA-256 the caller already computed from these very bytes (not hashed
        again; still compared with the expected one), or None."""
        known = digests if digests is not None else [None] * len(blobs)
        return [self._stage(data, expect, digest) for (data, expect), digest in zip(blobs, known, strict=True)]

    def finish(self, staged: Sequence[Staged | EvidenceError | OSError]) -> list[str | EvidenceError | OSError]:
        """Second half of `put_many`: make every staged file and its directory entries durable."""
        good = [s for s in staged if isinstance(s, Staged)]
        if self.fsync and good:
            if _syncfs is not None:
                error = _sync_filesystem(self._root)
                for s in good:
                    s.error = error
            else:
                self._sync_each(good)
            _drop_cached([s.target for s in good if s.error is None])
        return [(s.error if s.error is not None else s.digest) if isinstance(s, Staged) else s for s in staged]

    def _sync_each(self, good: list[Staged]) -> None:
        """Without syncfs: every file's data, then each directory that gained an entry."""
        files = sorted({s.target for s in good})
        dirs = sorted({d for s in good for d in s.dirs_to_sync(self._root)})
        errors = {p: _sync_path(p, p in dirs) for p in files + dirs}
        for s in good:
            bad = [errors[p] for p in (s.target, *s.dirs_to_sync(self._root)) if errors[p] is not None]
            s.error = bad[0] if bad else None

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run `fn` on the evidence sync thread (e.g. `finish` while the database does its part)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="evidence-sync")
            return self._pool.submit(fn, *args)

    def _stage(self, data: Buffer, expect: str | None, known: str | None) -> Staged | EvidenceError | OSError:
        digest = known if known is not None else hashlib.sha256(data).hexdigest()
        if expect is not None and digest != expect:
            return EvidenceError(f"content hash {digest} does not match the declared {expect}")
        target = self._file(digest)
        try:
            return self._create(target, digest, data)
        except OSError as exc:
            return exc

    def _create(self, target: str, digest: str, data: Buffer) -> Staged:
        """Write a new blob straight under its name (O_EXCL: one directory change instead of a temp
        file's create and rename). A name that exists is kept when its bytes hash right and rewritten
        atomically when not (a crash cut that write short: nothing committed points at it yet)."""
        new_dir = False
        try:
            fd = os.open(target, _CREATE_NEW, 0o644)
        except FileNotFoundError:  # first file of this leaf directory
            os.makedirs(os.path.dirname(target), exist_ok=True)
            new_dir = True
            try:
                fd = os.open(target, _CREATE_NEW, 0o644)
            except FileExistsError:
                return self._keep_or_rewrite(target, digest, data, new_dir)
        except FileExistsError:
            return self._keep_or_rewrite(target, digest, data, new_dir)
        try:
            _write_all(fd, data)
        except BaseException:
            os.close(fd)
            os.unlink(target)  # never leave a short file under a hash name
            raise
        os.close(fd)
        return Staged(digest, target, new_dir)

    def _keep_or_rewrite(self, target: str, digest: str, data: Buffer, new_dir: bool) -> Staged:
        if not _intact(target, digest, len(data)):
            tmp = os.path.join(os.path.dirname(target), f".tmp-{digest[:16]}-{threading.get_ident()}-{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, target)  # atomic; concurrent writers of the same hash write equal bytes
        return Staged(digest, target, new_dir)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def has(self, sha256: str) -> bool:
        """Whether `sha256` names a stored file; False for anything that is not a SHA-256 too."""
        try:
            return self.exists(sha256)
        except ValueError:
            return False


class Staged:
    """A blob under its hash (written now, or found intact), waiting for `finish` to sync it."""

    __slots__ = ("digest", "error", "new_dir", "target")

    def __init__(self, digest: str, target: str, new_dir: bool = False) -> None:
        self.digest, self.target, self.new_dir = digest, target, new_dir
        self.error: OSError | None = None

    def dirs_to_sync(self, root: str) -> list[str]:
        """The file's directory, and when it was just created, the entries that lead to it."""
        leaf = os.path.dirname(self.target)
        return [leaf, os.path.dirname(leaf), root] if self.new_dir else [leaf]


_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL


def _write_all(fd: int, data: Buffer) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _intact(target: str, digest: str, size: int) -> bool:
    """A file already stored under `digest` with exactly that content (rare: a resent event)."""
    try:
        if os.stat(target).st_size != size:
            return False
        with open(target, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest() == digest
    except FileNotFoundError:
        return False


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return fn  # type: ignore[no-any-return]


_syncfs = _load_syncfs()


def _sync_filesystem(root: str) -> OSError | None:
    """syncfs(2) the filesystem holding `root` (ctypes drops the GIL for the call); the error, if any."""
    assert _syncfs is not None
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError as exc:
        return exc
    try:
        if _syncfs(fd) != 0:
            err = ctypes.get_errno()
            return OSError(err, f"syncfs of {root}: {os.strerror(err)}")
    finally:
        os.close(fd)
    return None


def _drop_cached(paths: Sequence[str]) -> None:
    """Evict synced (so clean) files from the page cache; best effort: a file that can't be opened
    just stays cached."""
    if not hasattr(os, "posix_fadvise"):
        return
    for path in dict.fromkeys(paths):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        finally:
            os.close(fd)


def _sync_path(path: str, is_dir: bool) -> OSError | None:
    """fdatasync a file, fsync a directory; the error instead of raising it."""
    try:
        sync_path(path, data_only=not is_dir)
    except OSError as exc:
        return exc
    return None
