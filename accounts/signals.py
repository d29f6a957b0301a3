from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from .models import Membership
from .services import audit_record


@receiver(user_logged_in)
def record_login(sender, request, user, **kwargs) -> None:
    """Each organization's audit log shows its members' logins; staff logins go to the global log."""
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
