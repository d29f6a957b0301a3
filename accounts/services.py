"""Every write about users, organizations, memberships, invitations and the audit log."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from portal.errors import ConflictError, DomainError, NotAllowed

from .client_ip import client_ip
from .models import AuditEvent, Invitation, Membership, Organization, Role, User


# --- Audit ---------------------------------------------------------------------------------
def audit_event_build(
    *,
    organization: Organization | None,
    actor: User | None,
    action: str,
    target: Any = None,
    changes: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    ip_address: str | None = None,
) -> AuditEvent:
    """The audit event ``audit_record`` appends, unsaved: for a change that records several
    at once (``AuditEvent.all_objects.bulk_create``)."""
    actor_user = actor if actor is not None and actor.is_authenticated else None
    return AuditEvent(
        organization=organization,
        actor=actor_user,
        actor_email=actor_user.email if actor_user else "",
        actor_is_staff=bool(actor_user and actor_user.is_provider_staff),
        action=action,
        target_type=target._meta.label if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:255] if target is not None else "",
        changes=changes or {},
        ip_address=ip_address or client_ip(request),
    )


def audit_record(
    *,
    organization: Organization | None,
    actor: User | None,
    action: str,
    target: Any = None,
    changes: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    ip_address: str | None = None,
) -> AuditEvent:
    """Append one audit event. Call it inside the transaction of the change it records."""
    event = audit_event_build(
        organization=organization,
        actor=actor,
        action=action,
        target=target,
        changes=changes,
        request=request,
        ip_address=ip_address,
    )
    event.save(force_insert=True)
    return event


# --- Organizations ---------------------------------------------------------------------------
@transaction.atomic
def organization_create(
    *, name: str, slug: str, owner: User, account_manager: User | None = None, time_zone="UTC"
) -> Organization:
    organization = Organization.objects.create(
        name=name, slug=slug, account_manager=account_manager, time_zone=time_zone
    )
    Membership.all_objects.create(organization=organization, user=owner, role=Role.OWNER)
    audit_record(
        organization=organization,
        actor=owner,
        action="organization.created",
        target=organization,
        changes={"name": name, "slug": slug},
    )
    return organization


@transaction.atomic
def organization_update_settings(
    *,
    organization: Organization,
    actor: User,
    require_mfa: bool | None = None,
    time_zone: str | None = None,
    name: str | None = None,
    request: HttpRequest | None = None,
) -> Organization:
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    changes: dict[str, list[Any]] = {}
    if name is not None and name.strip() != organization.name:
        if not name.strip():
            raise DomainError("The organization needs a name.", field="name")
        if not name.strip().isprintable():
            # The name goes into e-mail subjects, where a line break is refused outright.
            raise DomainError("The name must be one line of printable text.", field="name")
        changes["name"] = [organization.name, name.strip()]
        organization.name = name.strip()
    if require_mfa is not None and require_mfa != organization.require_mfa:
        changes["require_mfa"] = [organization.require_mfa, require_mfa]
        organization.require_mfa = require_mfa
    if time_zone is not None and time_zone != organization.time_zone:
        if time_zone not in dict(Organization._meta.get_field("time_zone").choices):
            raise DomainError(f"Unknown time zone {time_zone!r}.", field="time_zone")
        changes["time_zone"] = [organization.time_zone, time_zone]
        organization.time_zone = time_zone
    if changes:
        organization.save()
        audit_record(
            organization=organization,
            actor=actor,
            action="organization.settings_changed",
            target=organization,
            changes=changes,
            request=request,
        )
    return organization


@transaction.atomic
def organization_status_set(
    *,
    organization: Organization,
    status: str,
    actor: User,
    reason: str = "",
    request: HttpRequest | None = None,
) -> bool:
    """Suspend or reinstate an organization (provider staff). While suspended its members may
    read but not write (``accounts.permissions.refused_while_suspended``) and the request
    checks reject new requests. Returns False when it already had that status."""
    if status not in Organization.Status.values:
        raise DomainError(f"Unknown organization status {status!r}.", field="status")
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    if organization.status == status:
        return False
    changes: dict[str, Any] = {"status": [organization.status, status]}
    if reason.strip():
        changes["reason"] = reason.strip()
    organization.status = status
    organization.save(update_fields=["status"])
    audit_record(
        organization=organization,
        actor=actor,
        action=(
            "organization.suspended"
            if status == Organization.Status.SUSPENDED
            else "organization.reinstated"
        ),
        target=organization,
        changes=changes,
        request=request,
    )
    return True


# --- Memberships -----------------------------------------------------------------------------
def _lock_memberships(organization: Organization) -> None:
    """Serialise membership changes of one organization so 'at least one owner' holds."""
    Organization.objects.select_for_update().filter(pk=organization.pk).first()


def _owner_count(organization: Organization) -> int:
    return Membership.objects.for_organization(organization).filter(role=Role.OWNER).count()


@transaction.atomic
def membership_change_role(
    *,
    membership: Membership,
    role: str,
    actor: User,
    request: HttpRequest | None = None,
) -> Membership:
    if role not in Role.values:
        raise DomainError(
            f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.", field="role"
        )
    organization = membership.organization
    _lock_memberships(organization)
    membership = Membership.objects.for_organization(organization).get(pk=membership.pk)
    if membership.role == role:
        return membership
    if membership.role == Role.OWNER and role != Role.OWNER and _owner_count(organization) <= 1:
        raise ConflictError(
            "This is the organization's last owner: make someone else owner first.", field="role"
        )
    actor_membership = Membership.objects.for_organization(organization).filter(user=actor).first()
    if Role.OWNER in (role, membership.role) and (
        actor_membership is None or actor_membership.role != Role.OWNER
    ):
        raise NotAllowed("Only an owner can grant or take away the owner role.", field="role")
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        organization=organization,
        actor=actor,
        action="membership.role_changed",
        target=membership,
        changes={"user": membership.user.email, "role": [old, role]},
        request=request,
    )
    return membership


@transaction.atomic
def membership_remove(
    *, membership: Membership, actor: User, request: HttpRequest | None = None
) -> None:
    organization = membership.organization
    _lock_memberships(organization)
    membership = (
        Membership.objects.for_organization(organization)
        .select_related("user")
        .get(pk=membership.pk)
    )
    if membership.role == Role.OWNER and _owner_count(organization) <= 1:
        raise ConflictError(
            "This is the organization's last owner: an organization always keeps one owner."
        )
    actor_membership = Membership.objects.for_organization(organization).filter(user=actor).first()
    is_self = membership.user_id == actor.pk
    if (
        membership.role == Role.OWNER
        and not is_self
        and (actor_membership is None or actor_membership.role != Role.OWNER)
    ):
        raise NotAllowed("Only an owner can remove another owner.")
    email = membership.user.email
    role = membership.role
    membership.delete()
    audit_record(
        organization=organization,
        actor=actor,
        action="membership.left" if is_self else "membership.removed",
        target=None,
        changes={"user": email, "role": role},
        request=request,
    )


# --- Invitations -----------------------------------------------------------------------------
def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # shown only in the e-mail; the database keeps its hash

    @property
    def path(self) -> str:
        return reverse("invitation_accept", kwargs={"token": self.token})


@transaction.atomic
def invitation_create(
    *,
    organization: Organization,
    email: str,
    role: str,
    invited_by: User,
    request: HttpRequest | None = None,
) -> IssuedInvitation:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise DomainError(
            f"{email or 'An empty value'} is not a valid e-mail address.", field="email"
        ) from None
    if role not in Role.values:
        raise DomainError(
            f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.", field="role"
        )
    inviter = Membership.objects.for_organization(organization).filter(user=invited_by).first()
    if role == Role.OWNER and (inviter is None or inviter.role != Role.OWNER):
        raise NotAllowed("Only an owner can invite another owner.", field="role")
    _lock_memberships(organization)
    if Membership.objects.for_organization(organization).filter(user__email__iexact=email).exists():
        raise ConflictError(f"{email} is already a member of {organization.name}.", field="email")
    now = timezone.now()
    # A new invitation to the same address replaces any open one.
    Invitation.objects.for_organization(organization).filter(
        email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    invitation = Invitation.all_objects.create(
        organization=organization,
        email=email,
        role=role,
        token_hash=_hash_token(token),
        invited_by=invited_by,
        expires_at=now + timedelta(hours=settings.INVITATION_TTL_HOURS),
    )
    audit_record(
        organization=organization,
        actor=invited_by,
        action="invitation.created",
        target=invitation,
        changes={"email": email, "role": role},
        request=request,
    )
    issued = IssuedInvitation(invitation=invitation, token=token)
    context = {
        "organization": organization,
        "invited_by": invited_by,
        "role": invitation.get_role_display(),
        "url": f"{settings.SITE_URL}{issued.path}",
        "expires_at": invitation.expires_at,
    }
    transaction.on_commit(
        lambda: send_mail(
            subject=f"You are invited to {organization.name} on the GPU Capacity Portal",
            message=render_to_string("accounts/email/invitation.txt", context),
            html_message=render_to_string("accounts/email/invitation.html", context),
            from_email=None,
            recipient_list=[email],
        ),
        robust=True,
    )
    return issued


def invitation_get_by_token(*, token: str) -> Invitation:
    """The invitation a link names, or a DomainError that says why the link does not work."""
    invitation = (
        Invitation.all_objects.select_related("organization", "invited_by")
        .filter(token_hash=_hash_token(token or ""))
        .first()
    )
    if invitation is None:
        raise DomainError("This invitation link is not valid.")
    if invitation.accepted_at:
        raise ConflictError("This invitation has already been used.")
    if invitation.revoked_at:
        raise ConflictError("This invitation was withdrawn or replaced by a newer one.")
    if invitation.expires_at <= timezone.now():
        raise ConflictError(
            "This invitation has expired: ask an owner or admin of "
            f"{invitation.organization.name} to send a new one."
        )
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user: User, request: HttpRequest | None = None) -> Membership:
    invitation = invitation_get_by_token(token=token)
    invitation = Invitation.all_objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at or invitation.revoked_at:
        raise ConflictError("This invitation has already been used.")
    if invitation.email.lower() != user.email.lower():
        raise NotAllowed(
            f"This invitation is for {invitation.email}, but you are signed in as {user.email}."
        )
    organization = invitation.organization
    membership, created = Membership.all_objects.get_or_create(
        organization=organization, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(
        organization=organization,
        actor=user,
        action="invitation.accepted",
        target=invitation,
        changes={"email": invitation.email, "role": membership.role, "joined": created},
        request=request,
    )
    return membership


@transaction.atomic
def invitation_revoke(
    *, invitation: Invitation, actor: User, request: HttpRequest | None = None
) -> Invitation:
    invitation = Invitation.all_objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at:
        raise ConflictError("This invitation was already accepted.")
    if invitation.revoked_at:
        return invitation
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_record(
        organization=invitation.organization,
        actor=actor,
        action="invitation.revoked",
        target=invitation,
        changes={"email": invitation.email},
        request=request,
    )
    return invitation
