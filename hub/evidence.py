"""Evidence files, content-addressed by SHA-256 under the hub data dir.

The only path component ever derived from outside is the hash, and only after it matches
`^[0-9a-f]{64}$`; names sent by a client are metadata, never paths.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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

    def path(self, sha256: str) -> Path:
        sha256 = check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, expect_sha256: str | None = None) -> str:
        """Write `data` once (fsynced) and return its hash; refuse data that doesn't match."""
        digest = hashlib.sha256(data).hexdigest()
        if expect_sha256 is not None and digest != expect_sha256:
            raise EvidenceError(f"content hash {digest} does not match the declared {expect_sha256}")
        target = self.path(digest)
        if target.exists() and target.stat().st_size == len(data):
            return digest
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, target)  # atomic; concurrent writers of the same hash write equal bytes
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()
