"""allauth customisation through its adapters, not copies of its views."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.urls import reverse

from .client_ip import client_ip

INVITATION_SESSION_KEY = "portal_invitation_token"


class AccountAdapter(DefaultAccountAdapter):
    def get_client_ip(self, request: HttpRequest) -> str:
        # allauth's IP-keyed rate limits count the address the audit log records.
        ip = client_ip(request)
        if ip is None:
            raise PermissionDenied("Unable to determine client IP address")
        return ip

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        if request.session.get(INVITATION_SESSION_KEY):
            return reverse("invitation_resume")
        return super().get_login_redirect_url(request)

    def get_signup_redirect_url(self, request: HttpRequest) -> str:
        if request.session.get(INVITATION_SESSION_KEY):
            return reverse("invitation_resume")
        return super().get_signup_redirect_url(request)


class MFAAdapter(DefaultMFAAdapter):
    error_messages = {
        **DefaultMFAAdapter.error_messages,
        "cannot_delete_authenticator": (
            "Two-factor authentication stays on: provider staff accounts cannot switch it off."
        ),
    }

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        # Provider staff must keep MFA on: their TOTP cannot be switched off.
        if authenticator.type == Authenticator.Type.TOTP and authenticator.user.is_provider_staff:
            return False
        return super().can_delete_authenticator(authenticator)
