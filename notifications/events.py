"""Notification events grouped for preferences: a user chooses per group, not per event.

An event is a dotted name (``request.approved``, ``reservation.activated``); its group is
decided by prefix, most specific first. Unknown events fall in ``other``.
"""

from __future__ import annotations

from django.db import models


class EventGroup(models.TextChoices):
    REQUESTS = "requests", "My organization's requests"
    RESERVATIONS = "reservations", "Reservations starting, ending and changing"
    APPROVALS = "approvals", "Decisions waiting on me (sign-off, approval, offers)"
    REMINDERS = "reminders", "Reminders and escalations of due decisions"
    ACCOUNT = "account", "Members, invitations and security"
    CONTRACTS = "contracts", "Contract alerts: committed spend consumed, under-use forecast"
    QUOTAS = "quotas", "Quota alerts: GPUs in use nearing or over the quota"
    OTHER = "other", "Everything else"


# prefix -> group; the longest matching prefix wins.
EVENT_PREFIX_GROUPS: dict[str, str] = {
    "request.reminder": EventGroup.REMINDERS,
    "request.escalated": EventGroup.REMINDERS,
    "request.approval_needed": EventGroup.APPROVALS,
    "request.sign_off_needed": EventGroup.APPROVALS,
    "request.offered": EventGroup.APPROVALS,
    "request.counter_offered": EventGroup.APPROVALS,
    "request.": EventGroup.REQUESTS,
    "reservation.": EventGroup.RESERVATIONS,
    "capacity.": EventGroup.RESERVATIONS,
    "member.": EventGroup.ACCOUNT,
    "invitation.": EventGroup.ACCOUNT,
    "security.": EventGroup.ACCOUNT,
    "contract.": EventGroup.CONTRACTS,
    "quota.": EventGroup.QUOTAS,
}


def event_group(event: str) -> str:
    best = ""
    for prefix in EVENT_PREFIX_GROUPS:
        if event.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return EVENT_PREFIX_GROUPS[best] if best else EventGroup.OTHER
