"""Server-side request forgery guard for media URLs.

Contract:

* :func:`is_public_address` is ``True`` only for globally routable unicast addresses: it
  refuses loopback, private, shared (CGNAT), link-local, multicast, reserved and unspecified
  addresses, including IPv4 addresses embedded in IPv6 (mapped, 6to4, Teredo, NAT64).
* :func:`check_public_host` resolves a host (IP literals are not resolved) and returns its
  addresses when *every* one is public; otherwise it raises :class:`MediaNotAllowed` naming the
  offending address. Resolution failure raises :class:`MediaFetchError`. The resolver is
  injectable (``async (host, port) -> list[str]``) for tests.

* :func:`pin_public_url` checks an http(s) URL's host that way and returns the URL rewritten
  to the first checked address, with the ``Host`` header and the TLS SNI name (request
  extension ``sni_hostname``) keeping the original name: a request built from it connects to
  the address that was checked, so a second DNS answer (rebinding) cannot point it elsewhere.

The media fetcher pins every redirect hop; callback deliveries pin every attempt.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .errors import MediaFetchError, MediaNotAllowed

__all__ = [
    "PinnedURL",
    "Resolver",
    "check_public_host",
    "is_public_address",
    "pin_public_url",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


async def system_resolver(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to, via the event loop's ``getaddrinfo``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is a globally routable unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None and not is_public_address(inner):
            return False
    blocked = (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )
    return ip.is_global and not blocked


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None


async def check_public_host(
    host: str, port: int, *, resolver: Resolver = system_resolver
) -> list[IPAddress]:
    """The addresses of ``host``, all public; raise :class:`MediaNotAllowed` otherwise."""
    literal = _parse_ip(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            answers = await resolver(host, port)
        except OSError as exc:
            raise MediaFetchError(f"Cannot resolve host {host!r}: {exc}.") from exc
        addresses = [ip for ip in (_parse_ip(a) for a in answers) if ip is not None]
        if not addresses:
            raise MediaFetchError(f"Host {host!r} did not resolve to any address.")
    for ip in addresses:
        if not is_public_address(ip):
            raise MediaNotAllowed(
                f"Refusing to fetch from host {host!r}: it resolves to {ip}, a loopback, "
                "private, link-local or otherwise non-public address. Fetching private-network "
                "URLs is disabled on this server (server option allow_private_urls / "
                "--allow-private-urls); send the media inline as a data: URL instead."
            )
    return addresses


@dataclass(frozen=True)
class PinnedURL:
    """``url`` with its host replaced by a checked address; send ``headers`` and
    ``extensions`` with the request so the server and TLS still see the original name."""

    url: httpx.URL
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


async def pin_public_url(url: httpx.URL, *, resolver: Resolver = system_resolver) -> PinnedURL:
    """Check ``url``'s host (:func:`check_public_host`) and pin ``url`` to its address."""
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = await check_public_host(host, port, resolver=resolver)
    headers = {"Host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    return PinnedURL(url.copy_with(host=str(addresses[0])), headers, extensions)
