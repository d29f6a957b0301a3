"""The address of the client that sent a request: what the audit log records and what the
IP-keyed rate limits (allauth's login, signup and password-reset limits) count.

Behind ``TRUSTED_PROXY_COUNT`` proxies of ours (the load balancer, a CDN in front of it...),
each proxy appends the address it received the request from to ``X-Forwarded-For``, so the
N-th entry from the right is the address our outermost proxy saw: the client's. Entries to
its left came with the request and anyone can forge them; they are never read. With 0 (the
default) the header is ignored and ``REMOTE_ADDR``, the peer of this process, is the client.

A chain shorter than N, or an N-th entry that is not an IP address, means the request did not
come through all our proxies: its ``REMOTE_ADDR`` is used then, as with 0.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _address(value: str) -> str | None:
    """``value`` as a normalised IP address, ports some proxies append left off; None when it
    is not an address."""
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [IPv6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # IPv4:port
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address (see the module's docstring); None without a request or an
    address."""
    if request is None:
        return None
    remote = _address(request.META.get("REMOTE_ADDR", ""))
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    chain = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    if len(chain) < proxies or not chain[-1].strip():
        return remote
    return _address(chain[-proxies]) or remote
