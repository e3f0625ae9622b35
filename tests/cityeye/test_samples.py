"""The demo's sample fetcher against a real local HTTP server serving a real .deb built here."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cityeye.samples import DebSample, SampleError, ar_members, extract_from_deb, fetch

PAYLOAD = b"RIFF-not-really-a-video" * 100
MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"


def _tar_xz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


def _deb() -> bytes:
    return _ar({"debian-binary": b"2.0\n", "control.tar.xz": _tar_xz({"./control": b"Package: x\n"}),
                "data.tar.xz": _tar_xz({MEMBER: PAYLOAD})})


@pytest.fixture
def server():
    deb = _deb()
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(deb)))
            self.end_headers()
            self.wfile.write(deb)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", deb, hits
    httpd.shutdown()
    httpd.server_close()


def test_ar_and_data_member_extraction():
    deb = _deb()
    assert list(ar_members(deb)) == ["debian-binary", "control.tar.xz", "data.tar.xz"]
    assert extract_from_deb(deb, MEMBER) == PAYLOAD
    with pytest.raises(SampleError, match="has no"):
        extract_from_deb(deb, "./nope")
    with pytest.raises(SampleError, match="not a .deb"):
        ar_members(b"garbage")


def test_fetch_downloads_checks_and_caches(server, tmp_path, monkeypatch):
    url, deb, hits = server
    monkeypatch.setenv("CITYEYE_SAMPLES_DIR", str(tmp_path))
    sample = DebSample(url=f"{url}/debian/pool/x.deb", deb_sha256=hashlib.sha256(deb).hexdigest(), member=MEMBER,
                       sha256=hashlib.sha256(PAYLOAD).hexdigest(), filename="vtest.avi")
    path = fetch(sample, progress=False, search_shared=False)
    assert path == tmp_path / "vtest.avi" and path.read_bytes() == PAYLOAD
    assert fetch(sample, progress=False, search_shared=False) == path
    assert len(hits) == 1, "the second fetch must come from the cache"


def test_fetch_refuses_a_tampered_package(server, tmp_path, monkeypatch):
    url, _, _ = server
    monkeypatch.setenv("CITYEYE_SAMPLES_DIR", str(tmp_path))
    sample = DebSample(url=f"{url}/debian/pool/x.deb", deb_sha256="0" * 64, member=MEMBER, sha256="0" * 64,
                       filename="vtest.avi")
    with pytest.raises(SampleError, match="sha256 does not match"):
        fetch(sample, progress=False, search_shared=False)
    assert not (tmp_path / "vtest.avi").exists()
