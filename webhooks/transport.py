"""Where a webhook may be sent, and the one function that sends it.

A customer chooses the URL, so the portal must never be turned into a way to reach its own
network. Every delivery resolves the host, refuses it when any address is not public
(private, loopback, link-local, shared, reserved, multicast...) unless the host or address is
in ``WEBHOOK_ALLOWED_HOSTS``, and then connects to the address it checked, not to whatever a
second DNS lookup would answer (DNS rebinding). TLS is still verified against the host name.
Redirects are not followed: a redirect could point anywhere.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings

from portal.errors import DomainError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
RESPONSE_READ_LIMIT = 4096


class UnsafeDestination(Exception):
    """The URL must not be called (scheme, or an address that is not public)."""


@dataclass(frozen=True)
class Sent:
    status: int
    latency_ms: int


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _allow_list() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names: set[str] = set()
    networks = []
    for entry in settings.WEBHOOK_ALLOWED_HOSTS:
        entry = entry.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return names, networks


def _allowed(host: str, address: IPAddress) -> bool:
    names, networks = _allow_list()
    return host in names or any(address in network for network in networks)


def url_validate(url: str) -> str:
    """Refuse, with a message for the person who typed it, a URL that can never be delivered
    to: wrong scheme, credentials in it, or a literal private address or local name. Names are
    checked again, resolved, at every delivery."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DomainError(f"Not a valid URL: {exc}.", field="url") from None
    allowed_schemes = ("https",) if settings.WEBHOOK_REQUIRE_HTTPS else ("https", "http")
    if parts.scheme not in allowed_schemes:
        raise DomainError(
            "The URL must start with https://."
            if settings.WEBHOOK_REQUIRE_HTTPS
            else "The URL must start with https:// or http://.",
            field="url",
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise DomainError("The URL needs a host name.", field="url")
    if parts.username is not None or parts.password is not None:
        raise DomainError("Put no user name or password in the URL.", field="url")
    if port == 0:
        raise DomainError("Port 0 cannot be called.", field="url")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if not _is_public(address) and not _allowed(host, address):
            raise DomainError(
                f"{host} is not a public address: webhooks go to the internet only.", field="url"
            )
    elif host in LOCAL_NAMES or host.endswith(".localhost"):
        names, _ = _allow_list()
        if host not in names:
            raise DomainError(
                f"{host} is a local name: webhooks go to the internet only.", field="url"
            )
    return url


def destination_resolve(host: str, port: int) -> list[IPAddress]:
    """Every address of ``host``; refused when any of them is not public (and not allowed)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeDestination(f"Could not resolve {host}: {exc}") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeDestination(f"{host} has no address.")
    for address in addresses:
        if not _is_public(address) and not _allowed(host, address):
            raise UnsafeDestination(f"{host} resolves to {address}, which is not a public address.")
    return addresses


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> Sent:
    """POST ``body`` to ``url`` through the checked address. Raises ``UnsafeDestination`` when
    the destination is refused, ``urllib3.exceptions.HTTPError`` (or ``OSError``) when the
    connection fails or times out."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or (
        parts.scheme == "http" and settings.WEBHOOK_REQUIRE_HTTPS
    ):
        raise UnsafeDestination("Webhooks are sent over HTTPS only.")
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = destination_resolve(host, port)[0]
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    default_port = port == (443 if parts.scheme == "https" else 80)
    host_header = host if ":" not in host else f"[{host}]"
    headers = {**headers, "Host": host_header if default_port else f"{host_header}:{port}"}
    pool_timeout = urllib3.Timeout(total=timeout)
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            str(address),
            port,
            timeout=pool_timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            server_hostname=host,
            assert_hostname=host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(str(address), port, timeout=pool_timeout, retries=False)
    started = time.monotonic()
    try:
        response = pool.urlopen(
            "POST",
            path,
            body=body,
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            response.read(RESPONSE_READ_LIMIT)
        finally:
            response.release_conn()
    finally:
        pool.close()
    return Sent(status=response.status, latency_ms=int((time.monotonic() - started) * 1000))
