"""Test helper shared by the evidence-package tests: rewrite a package the way a tamperer would."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable

from protocol.manifest import sha256_hex

UNLISTED = ("package.json", "package.json.ed25519")  # the index and the hub's signature of it


def rewrite(data: bytes, change: Callable[[str, bytes], bytes | None], *, reindex: bool = False) -> bytes:
    """The package re-zipped with `change(name, bytes)` applied to each member (None drops it), the way a
    tamperer would do it; `reindex`: also put the new hashes into package.json."""
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        files = {name: src.read(name) for name in src.namelist()}
    files = {n: new for n, b in files.items() if (new := change(n, b)) is not None}
    if reindex:
        index = json.loads(files["package.json"])
        index["files"] = {n: sha256_hex(b) for n, b in files.items() if n not in UNLISTED}
        files["package.json"] = json.dumps(index).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name, content in files.items():
            dst.writestr(name, content)
    return out.getvalue()
