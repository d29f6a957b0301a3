"""Throttles per API key and per signed-in user (429 with Retry-After).

Rates come from settings (env driven: API_THROTTLE_KEY_RATE, API_THROTTLE_USER_RATE) and are
read at request time, so tests and deployments change them without re-importing views. Counters
live in the default cache, whose key prefix is per test worker. ``API_THROTTLE_ENABLED = False``
switches them off (tests that do not test throttling).
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from .authentication import api_key_of


class _SettingsRateThrottle(SimpleRateThrottle):
    def __init__(self) -> None:  # the rate is looked up per request, in allow_request
        pass

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        if not settings.API_THROTTLE_ENABLED:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


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
