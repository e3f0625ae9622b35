"""Webhook addresses are checked again when a delivery connects, on the address the name resolves to
then: a name accepted at registration (here `localhost`, allowed by the hub's allow-list setting then)
that is not allowed any more is refused at delivery, and nothing reaches the address. No external network."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest

from hub.notify.egress import EgressPolicy, TargetRefused, guarded_client


class _Receiver(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.hits = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_a_name_allowed_at_registration_is_checked_again_at_delivery(receiver: str) -> None:
    at_registration = EgressPolicy.of(["127.0.0.0/8", "::1/128"])
    at_registration.check_url(receiver)  # accepted: the name resolves into an allowed network

    with guarded_client(at_registration, timeout_s=20) as client:  # positive control: delivered while allowed
        assert client.post(receiver, content=b"{}").status_code == 204
    assert _Receiver.hits == ["/hook"]

    now = EgressPolicy.of([])  # the address is no longer allowed (the setting changed, or the name moved)
    refused = r"host 'localhost' resolves to (127\.0\.0\.1|::1).*not a public address"
    with guarded_client(now, timeout_s=20) as client, pytest.raises(TargetRefused, match=refused):
        client.post(receiver, content=b"{}")
    assert _Receiver.hits == ["/hook"]  # the refused delivery never connected
