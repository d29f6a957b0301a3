"""Who may do what inside an organization: one table, used by pages and the API alike.

Views declare ``permission_map = {"GET": "org.view", "POST": "members.manage"}``; the base view
looks the method up here. Provider staff get the capabilities of their staff role on the
organizations they may see (an account manager on the organizations they manage, a capacity
planner or superuser on all), never a tenant role.
"""

from __future__ import annotations

from .models import Role, StaffRole

ALL_ROLES = frozenset(Role.values)
MANAGERS = frozenset({Role.OWNER, Role.ADMIN})

# capability -> tenant roles that hold it
ROLE_CAPABILITIES: dict[str, frozenset[str]] = {
    "org.view": ALL_ROLES,
    "org.manage": MANAGERS,  # settings such as require-MFA, sign-off policy
    "members.view": ALL_ROLES,
    "members.manage": MANAGERS,  # invite, remove, change role
    "org.leave": ALL_ROLES,  # a member leaves (never the last owner)
    "audit.view": MANAGERS,
    "requests.view": ALL_ROLES,
    "requests.create": frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER}),
    "requests.sign_off": MANAGERS,
    "requests.policy": MANAGERS,  # the organization's own sign-off and auto-accept choices
    "reservations.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER}),
    "usage.view": ALL_ROLES,
    "billing.view": frozenset({Role.OWNER, Role.ADMIN, Role.BILLING}),
    "api_keys.manage": MANAGERS,
    "webhooks.manage": MANAGERS,
    # Marking one's own notifications read: personal, nothing of the organization changes.
    "notifications.read": ALL_ROLES,
}

# capability -> staff roles that hold it on an organization they may see
STAFF_CAPABILITIES: dict[str, frozenset[str]] = {
    "org.view": frozenset({StaffRole.ACCOUNT_MANAGER, StaffRole.CAPACITY_PLANNER}),
    "members.view": frozenset({StaffRole.ACCOUNT_MANAGER, StaffRole.CAPACITY_PLANNER}),
    "audit.view": frozenset({StaffRole.ACCOUNT_MANAGER}),
    "requests.view": frozenset({StaffRole.ACCOUNT_MANAGER, StaffRole.CAPACITY_PLANNER}),
    "requests.decide": frozenset({StaffRole.ACCOUNT_MANAGER, StaffRole.CAPACITY_PLANNER}),
    "requests.policy": frozenset({StaffRole.ACCOUNT_MANAGER}),  # auto-approval too
    "usage.view": frozenset({StaffRole.ACCOUNT_MANAGER, StaffRole.CAPACITY_PLANNER}),
    "billing.view": frozenset({StaffRole.ACCOUNT_MANAGER}),
    "contracts.manage": frozenset({StaffRole.ACCOUNT_MANAGER}),  # documents, statements
    "org.policy": frozenset({StaffRole.ACCOUNT_MANAGER}),  # auto-approval policy
    "notifications.read": frozenset({StaffRole.ACCOUNT_MANAGER, StaffRole.CAPACITY_PLANNER}),
}

SUPERUSER = "superuser"

# What members of a suspended organization may still do besides reading: leave it, and mark
# their own notifications read (the API's read and read-all; the notification centre's pages
# live outside /o/<slug>/ and are not refused). Neither is a business write.
ALLOWED_WHILE_SUSPENDED = frozenset({"org.leave", "notifications.read"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def refused_while_suspended(*, organization, is_member: bool, method: str, capability: str) -> bool:
    """A suspended organization's members read everything they could, and write nothing
    (except leaving it and marking their own notifications read). Provider staff and provider
    keys are not members: unaffected."""
    return (
        organization.is_suspended
        and is_member
        and method.upper() not in SAFE_METHODS
        and capability not in ALLOWED_WHILE_SUSPENDED
    )


def role_has(role: str | None, capability: str) -> bool:
    if capability not in ROLE_CAPABILITIES and capability not in STAFF_CAPABILITIES:
        raise KeyError(f"Unknown capability {capability!r}")
    return role is not None and role in ROLE_CAPABILITIES.get(capability, frozenset())


def staff_role_has(staff_role: str | None, capability: str) -> bool:
    if staff_role == SUPERUSER:
        return capability in STAFF_CAPABILITIES
    return bool(staff_role) and staff_role in STAFF_CAPABILITIES.get(capability, frozenset())
