"""Demo organizations, people and provider staff for `manage.py seed_demo`.

Idempotent and deterministic: a second run finds everything in place and changes nothing.
The demo staff accounts have TOTP on with a published secret, so staff MFA is never switched
off, not even for the demo.
"""

from __future__ import annotations

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from django.db import transaction

from .models import Membership, Organization, Role, StaffRole, User
from .services import organization_create

DEMO_PASSWORD = "portal-demo-pass"
DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXP"

STAFF = [
    # e-mail, full name, staff role, superuser
    ("manager@provider.example", "Morgan Reyes", StaffRole.ACCOUNT_MANAGER, False),
    ("planner@provider.example", "Priya Natarajan", StaffRole.CAPACITY_PLANNER, False),
    ("admin@provider.example", "Portal Administrator", StaffRole.NONE, True),
]

ORGANIZATIONS = [
    # slug, name, time zone, members as (e-mail, full name, role)
    (
        "acme",
        "Acme",
        "America/New_York",
        [
            ("owner@acme.example", "Alice Owner", Role.OWNER),
            ("dev@acme.example", "Dev Eloper", Role.MEMBER),
        ],
    ),
    (
        "globex",
        "Globex",
        "America/Los_Angeles",
        [("owner@globex.example", "Grace Owner", Role.OWNER)],
    ),
]

DEMO_LOGINS = [email for email, *_ in STAFF] + [
    email for *_, members in ORGANIZATIONS for email, _, _ in members
]


def _user(email: str, full_name: str, **flags) -> tuple[User, bool]:
    user, created = User.objects.get_or_create(
        email=email, defaults={"full_name": full_name, **flags}
    )
    changed = created
    for field, value in flags.items():
        if getattr(user, field) != value:
            setattr(user, field, value)
            changed = True
    if not user.check_password(DEMO_PASSWORD):
        user.set_password(DEMO_PASSWORD)
        changed = True
    if changed:
        user.save()
    if not EmailAddress.objects.filter(user=user, email=email, verified=True).exists():
        EmailAddress.objects.update_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
        changed = True
    return user, changed


def _totp(user: User) -> bool:
    if Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
        return False
    TOTP.activate(user, DEMO_TOTP_SECRET)
    return True


@transaction.atomic
def seed() -> str:
    created: list[str] = []
    staff: dict[str, User] = {}
    for email, full_name, staff_role, superuser in STAFF:
        user, changed = _user(email, full_name, staff_role=staff_role, is_superuser=superuser)
        if _totp(user) or changed:
            created.append(email)
        staff[email] = user

    manager = staff["manager@provider.example"]
    for slug, name, time_zone, members in ORGANIZATIONS:
        people = []
        for email, full_name, role in members:
            user, changed = _user(email, full_name)
            if changed:
                created.append(email)
            people.append((user, role))
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            owner = next(user for user, role in people if role == Role.OWNER)
            organization = organization_create(
                name=name, slug=slug, owner=owner, account_manager=manager, time_zone=time_zone
            )
            created.append(slug)
        elif organization.account_manager_id != manager.pk:
            organization.account_manager = manager
            organization.save(update_fields=["account_manager"])
            created.append(slug)
        for user, role in people:
            _, made = Membership.all_objects.get_or_create(
                organization=organization, user=user, defaults={"role": role}
            )
            if made:
                created.append(f"{user.email} in {slug}")

    if not created:
        return "organizations, people and staff already in place"
    return f"created or updated: {', '.join(created)}"
