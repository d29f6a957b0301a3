import logging

from allauth.account.signals import user_signed_up
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from portal.errors import DomainError

from .adapters import INVITATION_SESSION_KEY
from .models import Membership
from .services import audit_record, invitation_accept

logger = logging.getLogger(__name__)


@receiver(user_logged_in)
def record_login(sender, request, user, **kwargs) -> None:
    """Each organization's log shows its members' logins; staff logins go to the global log."""
    memberships = list(
        Membership.objects.unscoped_for_staff().filter(user=user).select_related("organization")
    )
    if not memberships:
        audit_record(organization=None, actor=user, action="user.logged_in", request=request)
    for membership in memberships:
        audit_record(
            organization=membership.organization,
            actor=user,
            action="user.logged_in",
            request=request,
        )


@receiver(user_signed_up)
def join_invited_organization(sender, request, user, **kwargs) -> None:
    """Someone who signed up from an invitation link lands in the organization at once.

    Only when they signed up with the invited address; otherwise the invitation stays open and
    the confirmation page explains the mismatch.
    """
    token = request.session.get(INVITATION_SESSION_KEY) if request is not None else None
    if not token:
        return
    try:
        invitation_accept(token=token, user=user, request=request)
    except DomainError as exc:
        logger.info("Invitation not accepted at sign-up of user %s: %s", user.pk, exc.message)
        return
    request.session.pop(INVITATION_SESSION_KEY, None)
