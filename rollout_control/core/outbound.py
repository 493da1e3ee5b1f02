"""Outbound HTTP to addresses an admin typed (webhooks): never aimed inside.

A target must be http or https, and every address its host resolves to must be public: not
loopback, private, link-local, multicast, unspecified or reserved, checked through IPv4-mapped,
6to4, Teredo and NAT64 IPv6 forms too. An operator can allow networks explicitly
(WEBHOOK_ALLOWED_NETWORKS, e.g. a receiver on the LAN). The check runs when an endpoint is saved
and again at send time, on the addresses resolved then, and the connection goes to the address
that was checked, so a DNS answer that changes in between (rebinding) cannot redirect it.
Redirects are never followed, and failures are reported in general terms: a delivery's error is
shown in the admin, and must not tell an admin which internal ports are open.
"""

import http.client
import ipaddress
import logging
import socket
import ssl
import urllib.parse
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(ValueError):
    """The URL is not one this service will send to; `message` says why, for the admin."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unresolvable(TargetRefused):
    """The host does not resolve (now): at send time, worth retrying later."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


def _embedded(ip: IPAddress) -> list[IPAddress]:
    """The address and the IPv4 addresses an IPv6 one carries (and would reach)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return [ip]
    inner: list[IPAddress] = []
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]  # a mapped address *is* the IPv4 one
    if ip.sixtofour is not None:
        inner.append(ip.sixtofour)
    if ip.teredo is not None:
        inner.extend(ip.teredo)
    if ip in _NAT64:
        inner.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [ip, *inner]


def _public(ip: IPAddress) -> bool:
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or ip.is_link_local:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return False
    return ip.is_global


def address_allowed(ip: IPAddress) -> bool:
    allowed = settings.WEBHOOK_ALLOWED_NETWORKS
    return all(
        _public(part) or any(part.version == net.version and part in net for net in allowed)
        for part in _embedded(ip)
    )


def parse_target(url: str) -> Target:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("Not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused("Only http:// and https:// URLs.")
    if not parts.hostname:
        raise TargetRefused("The URL names no host.")
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Target(scheme, parts.hostname, port or (443 if scheme == "https" else 80), path)


def resolve(target: Target) -> list[IPAddress]:
    """Every address the host resolves to, each checked: all must be allowed."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Unresolvable(f"The host {target.host!r} does not resolve.") from None
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses or not all(address_allowed(ip) for ip in addresses):
        raise TargetRefused(
            "The host is, or resolves to, a loopback, private, link-local, multicast or "
            "reserved address; an operator can allow a network with WEBHOOK_ALLOWED_NETWORKS."
        )
    return addresses


def check_url(url: str) -> None:
    """For saving an endpoint: raises TargetRefused with a message for the `url` field. A name
    that does not resolve yet is accepted: the send-time check decides then."""
    target = parse_target(url)
    try:
        resolve(target)
    except Unresolvable:
        logger.info("webhook host %s does not resolve now; checked again at send time", target.host)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address already checked, not to whatever the host resolves to now."""

    def __init__(self, target: Target, address: IPAddress, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = str(address)

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, address: IPAddress, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = str(address)

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        # The certificate is checked against the host name in the URL (SNI as well).
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class DeliveryFailed(OSError):
    """A send that did not get a 2xx; `message` is safe to show (no internal details)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POSTs once to a checked address; returns the 2xx status, else raises DeliveryFailed (or
    TargetRefused, which is a ValueError: retrying a refused target does not help)."""
    target = parse_target(url)
    addresses = resolve(target)
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    for address in addresses:
        connection = connection_class(target, address, timeout)
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            logger.warning("webhook to %s (%s) failed: %s", target.host, address, exc)
            continue
        finally:
            connection.close()
        if 200 <= status < 300:
            return status
        if 300 <= status < 400:
            raise DeliveryFailed(f"HTTP {status} (redirects are not followed)", status)
        raise DeliveryFailed(f"HTTP {status}", status)
    raise DeliveryFailed("Could not connect or got no answer (details in the server log).")
