"""The one place that decides whether a user must set up MFA before going on."""

from __future__ import annotations

from allauth.mfa.models import Authenticator

from .models import Organization, User


def user_has_totp(user: User) -> bool:
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def mfa_required_for_staff(user: User) -> bool:
    return user.is_authenticated and user.is_provider_staff and not user_has_totp(user)


def mfa_required_for_organization(user: User, organization: Organization) -> bool:
    return organization.require_mfa and not user_has_totp(user)
