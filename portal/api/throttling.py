"""Throttles per API key and per signed-in user (429 with Retry-After).

Rates come from settings (env driven: API_THROTTLE_KEY_RATE, API_THROTTLE_USER_RATE) and are
read at request time, so tests and deployments change them without re-importing views. Counters
live in the default cache, whose key prefix is per test worker. ``API_THROTTLE_ENABLED = False``
switches them off (tests that do not test throttling).

Each credential has one counter per window of the rate's duration, incremented atomically;
one Redis round trip per request (a script: one command) creates it (with its expiry) if
missing, increments it and reads the previous window's counter. A request
is allowed while ``current + previous x (share of the previous window still inside the last
duration)`` stays below the rate: a sliding window, estimated from two counters. DRF's own
throttle keeps the list of every request's time in the window and rewrites it on each request,
which costs more the higher the rate. A refused request does not count.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

from .authentication import api_key_of


class _SettingsRateThrottle(SimpleRateThrottle):
    cache_format = "throttle:%(scope)s:%(ident)s"

    def __init__(self) -> None:  # the rate is looked up per request, in allow_request
        self.wait_seconds: float | None = None

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        if not settings.API_THROTTLE_ENABLED:
            return True
        # The credential first: of the three throttles, two do not apply to a given call.
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        now = self.timer()
        window = int(now // self.duration)
        current_key, previous_key = f"{key}:{window}", f"{key}:{window - 1}"
        counts = _count(current_key, previous_key, timeout=2 * self.duration)
        if counts is None:  # the cache is down: throttling pauses (the cache fails open)
            return True
        current, previous = counts
        elapsed = now - window * self.duration
        weight = 1 - elapsed / self.duration
        if current + previous * weight <= self.num_requests:
            return True
        cache.decr(current_key)  # a refused request does not count
        self.wait_seconds = self._wait(
            current=current - 1, previous=previous, elapsed=elapsed, weight=weight
        )
        return False

    def _wait(self, *, current: int, previous: int, elapsed: float, weight: float) -> float:
        """Seconds until the estimate leaves room for one more request."""
        n, duration = self.num_requests, self.duration
        if previous and current + 1 <= n:
            # Room comes as the previous window slides out: current + previous x w' + 1 <= n.
            needed_weight = (n - current - 1) / previous
            return max(1.0, (weight - needed_weight) * duration)
        # The current window alone is full: wait for its end, then for it to slide out enough.
        to_end = duration - elapsed
        share = 1 - (n - 1) / current if current else 0
        return max(1.0, to_end + max(0.0, share) * duration)

    def wait(self) -> float | None:
        return math.ceil(self.wait_seconds) if self.wait_seconds is not None else None


# Create this window's counter with its expiry if missing, add one, read the previous window's.
# One command, where a pipeline of three cost ~85 us more of the web worker's CPU per call (in
# redis-py) for ~12 us less of Redis's.
_COUNT_SCRIPT = (
    "redis.call('SET', KEYS[1], 0, 'EX', ARGV[1], 'NX') "
    "return {redis.call('INCR', KEYS[1]), redis.call('GET', KEYS[2]) or '0'}"
)
_script: list[Any] = []  # redis-py's Script, made once (it keeps the SHA-1 Redis knows it by)


def _count(current_key: str, previous_key: str, *, timeout: int) -> tuple[int, int] | None:
    """(this window's counter after adding one, the previous window's counter), or None when
    the cache is down. On Redis one round trip (``_COUNT_SCRIPT``)."""
    client = getattr(cache, "client", None)
    if not hasattr(client, "get_client"):  # not django-redis (local memory in development)
        current = _increment(current_key, timeout=timeout)
        return None if current is None else (current, cache.get(previous_key, 0) or 0)
    try:
        redis = client.get_client(write=True)
        if not _script:
            _script.append(redis.register_script(_COUNT_SCRIPT))
        current, previous = _script[0](
            keys=[cache.make_key(current_key), cache.make_key(previous_key)],
            args=[timeout],
            client=redis,
        )
    except RedisError:
        return None
    return int(current), int(previous)


def _increment(key: str, *, timeout: int) -> int | None:
    """The counter after adding one (created at 1 with its expiry); None if the cache is down."""
    try:
        value = cache.incr(key)
    except ValueError:  # no counter yet in this window
        if cache.add(key, 1, timeout=timeout):
            return 1
        try:
            value = cache.incr(key)  # another request created it in between
        except ValueError:
            return None
    return value


class ApiKeyRateThrottle(_SettingsRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request, view) -> str | None:
        api_key = api_key_of(request)
        if api_key is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": api_key.pk}


class UserRateThrottle(_SettingsRateThrottle):
    """Signed-in browser sessions (and scripts using them), per user."""

    scope = "user"

    def get_cache_key(self, request, view) -> str | None:
        if api_key_of(request) is not None or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class AnonymousRateThrottle(_SettingsRateThrottle):
    """Unauthenticated calls (the schema, and failed attempts), per client address."""

    scope = "anonymous"

    def get_cache_key(self, request, view) -> str | None:
        if request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def get_ident(self, request) -> str:
        """The client's address as the audit log and the sign-in limits count it
        (``TRUSTED_PROXY_COUNT``; ``accounts.client_ip``)."""
        from accounts.client_ip import client_ip

        return client_ip(request) or super().get_ident(request)
