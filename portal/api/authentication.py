"""Credentials of the API: ``Authorization: Bearer <api key>`` and browser sessions (CSRF)."""

from __future__ import annotations

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.apikeys import InvalidApiKey, api_key_authenticate
from accounts.models import ApiKey, User

BEARER = "Bearer"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer gpc_...``. ``request.user`` is the user the key acts for and
    ``request.auth`` the ApiKey. A bad, revoked or expired key is refused at once (401)."""

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").strip()
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != BEARER.lower():
            return None
        token = token.strip()
        if not token:
            raise exceptions.AuthenticationFailed("The Bearer credential is empty.")
        try:
            api_key = api_key_authenticate(raw=token)
        except InvalidApiKey as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        return api_key.created_by, api_key

    def authenticate_header(self, request: Request) -> str:
        # Makes unauthenticated calls answer 401 (not 403) with a challenge.
        return f'{BEARER} realm="api"'


def api_key_of(request: Request) -> ApiKey | None:
    """The API key that authenticated this request, or None for a session."""
    return request.auth if isinstance(request.auth, ApiKey) else None


def credential_of(request: Request) -> str:
    """A stable name of the credential, to scope idempotency records and throttles."""
    api_key = api_key_of(request)
    if api_key is not None:
        return f"key:{api_key.pk}"
    return f"user:{request.user.pk}"
