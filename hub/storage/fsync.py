"""Durability on disk: sync one file's data or one directory's entries. The database's WAL (hub.storage.db) and
the evidence store (hub.evidence.files) both need it before anything is acknowledged."""

from __future__ import annotations

import os

_datasync = getattr(os, "fdatasync", os.fsync)


def datasync_fd(fd: int) -> None:
    """fdatasync an open file: its data, not its times."""
    _datasync(fd)


def sync_path(path: str, *, data_only: bool) -> tuple[int, int]:
    """fdatasync a file (`data_only`: its data, not its times) or fsync it (a directory: its entries).
    Returns its (device, inode), which tells a file removed and created again from the old one; raises
    OSError."""
    fd = os.open(path, os.O_RDONLY)
    try:
        (_datasync if data_only else os.fsync)(fd)
        st = os.fstat(fd)
        return st.st_dev, st.st_ino
    finally:
        os.close(fd)
