"""The public sample footage the demo replays: OpenCV's vtest.avi.

Taken from `../shared/fixtures` when present; otherwise pulled once from Debian's `opencv-doc`
package (a package registry, reachable where model hubs are not), sha256-checked and cached.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DebSample:
    url: str
    deb_sha256: str
    member: str
    sha256: str
    filename: str


VTEST = DebSample(
    url="http://deb.debian.org/debian/pool/main/o/opencv/opencv-doc_4.6.0+dfsg-12_all.deb",
    deb_sha256="4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a",
    member="./usr/share/doc/opencv-doc/examples/data/vtest.avi",
    sha256="45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
    filename="vtest.avi",
)
MIRROR_ENV = "CITYEYE_DEBIAN_MIRROR"  # e.g. a bureau's internal Debian mirror


class SampleError(RuntimeError):
    pass


def samples_dir() -> Path:
    return Path(os.environ.get("CITYEYE_SAMPLES_DIR", Path.home() / ".cache" / "cityeye" / "samples"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shared_candidates() -> list[Path]:
    """Where a checkout keeps ../shared/fixtures: beside the repo, or beside the working directory."""
    repo = Path(__file__).resolve().parents[1]
    return [repo.parent / "shared" / "fixtures" / "video", Path.cwd().parent / "shared" / "fixtures" / "video"]


def ar_members(blob: bytes) -> dict[str, bytes]:
    """Members of a Unix `ar` archive (the .deb container)."""
    if not blob.startswith(b"!<arch>\n"):
        raise SampleError("not a .deb (ar) archive")
    members, pos = {}, 8
    while pos + 60 <= len(blob):
        header = blob[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members[name] = blob[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def extract_from_deb(deb: bytes, member: str) -> bytes:
    members = ar_members(deb)
    data_name = next((n for n in members if n.startswith("data.tar")), None)
    if data_name is None:
        raise SampleError("the .deb has no data.tar member")
    with tarfile.open(fileobj=io.BytesIO(members[data_name]), mode="r:*") as tar:
        try:
            handle = tar.extractfile(member)
        except KeyError as exc:
            raise SampleError(f"the package has no {member}") from exc
        if handle is None:
            raise SampleError(f"{member} is not a regular file")
        return handle.read()


def _download(url: str, progress: bool) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            buf = io.BytesIO()
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {url.rsplit('/', 1)[-1]}",
                      disable=not progress) as bar:
                while chunk := response.read(1 << 16):
                    buf.write(chunk)
                    bar.update(len(chunk))
            return buf.getvalue()
    except (urllib.error.URLError, OSError) as exc:
        raise SampleError(f"cannot download {url}: {getattr(exc, 'reason', exc)}; pass --video PATH instead") from exc


def fetch(sample: DebSample = VTEST, *, progress: bool = True, search_shared: bool = True) -> Path:
    """The sample's local path: ../shared, else the cache, else downloaded, checked and cached."""
    for folder in shared_candidates() if search_shared else []:
        if (folder / sample.filename).is_file():
            return folder / sample.filename
    target = samples_dir() / sample.filename
    if target.is_file() and _sha256(target.read_bytes()) == sample.sha256:
        return target
    mirror = os.environ.get(MIRROR_ENV)
    url = f"{mirror.rstrip('/')}/{sample.url.split('/debian/', 1)[1]}" if mirror else sample.url
    log.info("fetching %s from %s", sample.filename, url)
    deb = _download(url, progress)
    if _sha256(deb) != sample.deb_sha256:
        raise SampleError(f"{url}: sha256 does not match the Debian archive's ({sample.deb_sha256[:12]}…)")
    data = extract_from_deb(deb, sample.member)
    if _sha256(data) != sample.sha256:
        raise SampleError(f"{sample.member}: unexpected sha256")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target
