"""Where the hub may send requests of its own (webhooks): public addresses only, unless a network is allowed.

A webhook URL is chosen by an admin, but the hub does the POSTing, so a URL aimed at the hub's own
network (loopback, the intranet, the cloud metadata service at 169.254.169.254) would let whoever holds
an admin token reach what only the hub can reach (SSRF). `EgressPolicy.check_url` refuses such URLs at
registration; `guarded_client` checks again at connect time, on the addresses actually connected to, so a
name that resolves elsewhere later (DNS rebinding) is refused too. A bureau whose dispatch system is on
an intranet lists its networks in the hub setting `webhook_allow_cidrs`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ALLOW_SETTING = "webhook_allow_cidrs"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # an IPv4 address in the last 32 bits


class TargetRefused(Exception):
    """A URL or address the hub will not send to; the message says why."""


def _plain(addr: Address) -> Address:
    """The IPv4 address an IPv4-mapped IPv6 address stands for (the socket reaches that host)."""
    mapped = getattr(addr, "ipv4_mapped", None)
    return mapped if mapped is not None else addr


def _embedded(addr: Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses carried inside an IPv6 one (6to4, Teredo, NAT64): they are reached too."""
    if not isinstance(addr, ipaddress.IPv6Address):
        return []
    found = [a for a in (addr.sixtofour, *(addr.teredo or ())) if a is not None]
    if addr in _NAT64:
        found.append(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    return found


def non_public_reason(addr: Address) -> str | None:
    """Why `addr` is not a public unicast address (None: it is). Order: the most specific name first."""
    addr = _plain(addr)
    for inner in _embedded(addr):
        reason = non_public_reason(inner)
        if reason:
            return f"{reason} {inner} inside"
    checks = (
        ("unspecified", addr.is_unspecified), ("loopback", addr.is_loopback),
        ("link-local, as the cloud metadata service", addr.is_link_local), ("multicast", addr.is_multicast),
        ("site-local", getattr(addr, "is_site_local", False)), ("reserved", addr.is_reserved),
        ("private", addr.is_private), ("non-public", not addr.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class EgressPolicy:
    """Public addresses, plus any address in `allow` (explicitly trusted networks). `purpose` and `setting`
    name, in refusals, what is sending and the hub setting that lists the allowed networks."""

    allow: tuple[Network, ...] = ()
    purpose: str = "webhooks"
    setting: str = ALLOW_SETTING

    @classmethod
    def of(cls, networks: Iterable[Network | str], *, purpose: str = "webhooks", setting: str = ALLOW_SETTING
           ) -> EgressPolicy:
        return cls(tuple(ipaddress.ip_network(n) for n in networks), purpose, setting)

    def check_address(self, addr: Address, host: str) -> None:
        plain = _plain(addr)
        if any(plain in net or addr in net for net in self.allow):
            return
        reason = non_public_reason(addr)
        if reason:
            shown = host if _is_literal(host) else f"host {host!r} resolves to {addr}, which"
            raise TargetRefused(f"{shown} is not a public address ({reason}); {self.purpose} may only reach public "
                                f"addresses unless the network is listed in the hub setting {self.setting}")

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of `host`, each checked; refused if any one is not allowed (a name with one
        private address among public ones is as dangerous as one with only that address)."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError, ValueError) as exc:  # gaierror; a name the resolver refuses outright
            raise httpcore.ConnectError(f"host {host!r} does not resolve: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            self.check_address(ipaddress.ip_address(address.split("%", 1)[0]), host)
        return addresses

    def check_url(self, url: str) -> None:
        """Refuse what the hub must not POST to: another scheme, credentials in the URL, a non-public host."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise TargetRefused(f"not a valid URL: {exc}") from exc
        if parsed.scheme not in ("http", "https"):
            raise TargetRefused(f"scheme {parsed.scheme!r} is not allowed; use http or https")
        if parsed.userinfo:
            raise TargetRefused("credentials in the URL (user:password@) are not allowed; the body is signed")
        host = parsed.raw_host.decode("ascii")  # what the client connects to (IDNA-encoded, no brackets)
        if not host:
            raise TargetRefused("the URL has no host")
        try:
            self.resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80))
        except httpcore.ConnectError as exc:
            raise TargetRefused(str(exc)) from exc


class _CheckedBackend(httpcore.SyncBackend):
    """Resolves and checks the host at connect time, then connects to a checked address (never re-resolves)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        error: Exception | None = None
        for address in self.policy.resolve(host, port):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc  # try the host's next address
        raise error or httpcore.ConnectError(f"host {host!r} has no address")


class _CheckedTransport(httpx.HTTPTransport):
    def __init__(self, policy: EgressPolicy) -> None:
        super().__init__(trust_env=False)
        # HTTPTransport takes no network backend; its pool is rebuilt with ours (TLS still verifies the name).
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(),
                                             network_backend=_CheckedBackend(policy))


def guarded_client(policy: EgressPolicy, timeout_s: float) -> httpx.Client:
    """An HTTP client that connects only where `policy` allows, follows no redirects and ignores proxy
    variables (a proxy would resolve the name itself, out of reach of the check)."""
    return httpx.Client(transport=_CheckedTransport(policy), timeout=timeout_s, follow_redirects=False,
                        trust_env=False)
