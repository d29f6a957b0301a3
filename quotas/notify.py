"""Who hears about each step of a request or reservation, and what they are told.

The one place the workflow talks to ``notifications``: each function is called inside the
transaction of the change, so the in-app notification commits with it and the e-mail goes
out after commit (``notification_publish`` enqueues it with ``on_commit``). Dedupe keys name
the row, its version and the new state, so a repeated call never notifies twice.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.urls import NoReverseMatch, reverse

from accounts.models import Membership, Organization, Role, User
from quotas.models import CapacityRequest, RequestComment, Reservation
from quotas.workflow import RequestState, ReservationState
from webhooks import publish as webhooks

S = RequestState
V = ReservationState


def _publish(
    *,
    event: str,
    organization: Organization,
    recipients: Iterable[User | None],
    title: str,
    body: str,
    url: str,
    dedupe_key: str,
    actor: User | None,
) -> None:
    from notifications.services import notification_publish

    notification_publish(
        event=event,
        organization=organization,
        recipients=[user for user in recipients if user is not None],
        title=title,
        body=body,
        url=url,
        dedupe_key=dedupe_key,
        actor=actor if actor is not None and actor.is_authenticated else None,
    )


def _url(name: str, fallback: str, **kwargs) -> str:
    try:
        return reverse(name, kwargs=kwargs)
    except NoReverseMatch:
        return fallback


def request_url(capacity_request: CapacityRequest) -> str:
    slug = capacity_request.organization.slug
    return _url(
        "request_detail",
        f"/o/{slug}/requests/{capacity_request.pk}/",
        org_slug=slug,
        pk=capacity_request.pk,
    )


def staff_request_url(capacity_request: CapacityRequest) -> str:
    return _url(
        "staff_request_detail",
        f"/staff/requests/{capacity_request.pk}/",
        pk=capacity_request.pk,
    )


def reservation_url(reservation: Reservation) -> str:
    slug = reservation.organization.slug
    return _url(
        "reservation_detail",
        f"/o/{slug}/reservations/{reservation.pk}/",
        org_slug=slug,
        pk=reservation.pk,
    )


def organization_managers(organization: Organization) -> list[User]:
    """The organization's owners and admins."""
    return [
        membership.user
        for membership in Membership.objects.for_organization(organization)
        .filter(role__in=[Role.OWNER, Role.ADMIN], user__is_active=True)
        .select_related("user")
        .order_by("user_id")
    ]


def requester_if_member(capacity_request: CapacityRequest) -> User | None:
    """The requester, while still a member: someone who left or was removed from the
    organization hears nothing more about its requests."""
    if not capacity_request.requested_by_id:
        return None
    still_member = (
        Membership.objects.for_organization(capacity_request.organization_id)
        .filter(user_id=capacity_request.requested_by_id)
        .exists()
    )
    return capacity_request.requested_by if still_member else None


def capacity_planners() -> list[User]:
    from quotas.services._base import capacity_planners as planners

    return planners()


# to_state -> (event, who: "tenant" | "managers" | "account_manager" | "planners")
_REQUEST_AUDIENCE: dict[str, tuple[str, tuple[str, ...]]] = {
    S.PENDING_INTERNAL_APPROVAL: ("request.sign_off_needed", ("managers",)),
    S.PENDING_APPROVAL: ("request.approval_needed", ("account_manager",)),
    S.PENDING_SECOND_APPROVAL: ("request.approval_needed", ("planners",)),
    S.COUNTER_OFFERED: ("request.counter_offered", ("tenant",)),
    S.OFFERED: ("request.offered", ("tenant",)),
    S.WAITLISTED: ("request.waitlisted", ("tenant",)),
    S.APPROVED: ("request.approved", ("tenant", "account_manager")),
    S.REJECTED: ("request.rejected", ("tenant",)),
    S.WITHDRAWN: ("request.withdrawn", ("tenant", "account_manager")),
    S.CANCELLED: ("request.cancelled", ("tenant", "account_manager")),
    S.EXPIRED: ("request.expired", ("tenant", "account_manager")),
}

_HEADLINES = {
    S.PENDING_INTERNAL_APPROVAL: "{ref} needs your sign-off",
    S.PENDING_APPROVAL: "{ref} from {org} awaits your decision",
    S.PENDING_SECOND_APPROVAL: "{ref} from {org} needs a second approval",
    S.COUNTER_OFFERED: "{ref}: you have a counter-offer",
    S.OFFERED: "{ref}: capacity freed up and is held for you",
    S.WAITLISTED: "{ref} is on the waitlist",
    S.APPROVED: "{ref} is approved",
    S.REJECTED: "{ref} was rejected",
    S.WITHDRAWN: "{ref} was withdrawn",
    S.CANCELLED: "{ref} was cancelled",
    S.EXPIRED: "{ref} expired",
}


def _audience(
    capacity_request: CapacityRequest, who: Iterable[str]
) -> tuple[list[User | None], list[User]]:
    """(tenant-side recipients, staff recipients)."""
    tenant: list[User | None] = []
    staff: list[User] = []
    organization = capacity_request.organization
    for group in who:
        if group in ("tenant", "managers"):
            tenant += organization_managers(organization)
            if group == "tenant":
                tenant.append(requester_if_member(capacity_request))
        elif group == "account_manager" and organization.account_manager_id:
            staff.append(organization.account_manager)
        elif group == "planners":
            staff += capacity_planners()
    return tenant, staff


def request_moved(
    capacity_request: CapacityRequest, *, actor: User | None, reason: str = ""
) -> None:
    """Tell the people concerned that the request reached its current state."""
    state = capacity_request.state
    webhooks.request_event_publish(capacity_request, reason=reason)
    if state not in _REQUEST_AUDIENCE:
        return
    event, who = _REQUEST_AUDIENCE[state]
    tenant, staff = _audience(capacity_request, who)
    title = _HEADLINES[state].format(
        ref=capacity_request.reference, org=capacity_request.organization.name
    )
    body = f"{capacity_request.reference}: {capacity_request.summary}."
    if state in (S.COUNTER_OFFERED, S.OFFERED) and capacity_request.offer_expires_at:
        body += (
            f" Offered: {capacity_request.offer_gpu_count} GPUs"
            f" from {capacity_request.offer_starts_at:%Y-%m-%d %H:%M}"
            f" to {capacity_request.offer_ends_at:%Y-%m-%d %H:%M} UTC,"
            f" held until {capacity_request.offer_expires_at:%Y-%m-%d %H:%M} UTC."
        )
    if reason:
        body += f" Reason: {reason}"
    key = f"request:{capacity_request.pk}:v{capacity_request.version}:{state}"
    organization = capacity_request.organization
    if tenant:
        _publish(
            event=event,
            organization=organization,
            recipients=tenant,
            title=title,
            body=body,
            url=request_url(capacity_request),
            dedupe_key=key,
            actor=actor,
        )
    if staff:
        _publish(
            event=event,
            organization=organization,
            recipients=staff,
            title=title,
            body=body,
            url=staff_request_url(capacity_request),
            dedupe_key=key,
            actor=actor,
        )


def request_offer_held(capacity_request: CapacityRequest, *, actor: User | None) -> None:
    """An accepted offer (accepted automatically where the organization opted in) went to the
    approvers instead of being booked: the tenant side hears that its capacity is held for it
    until they decide, as it hears of the offer itself (and its webhooks, whoever is told)."""
    webhooks.request_offer_held_publish(capacity_request, accepted_automatically=actor is None)
    tenant, _staff = _audience(capacity_request, ("tenant",))
    if not tenant:
        return
    who = (
        "the capacity planners"
        if capacity_request.state == S.PENDING_SECOND_APPROVAL
        else "your account manager"
    )
    how = "was accepted automatically" if actor is None else "was accepted"
    body = (
        f"{capacity_request.reference}: {capacity_request.summary}. The offer {how} and is"
        f" held for you: {capacity_request.offer_gpu_count} GPUs"
        f" from {capacity_request.offer_starts_at:%Y-%m-%d %H:%M}"
        f" to {capacity_request.offer_ends_at:%Y-%m-%d %H:%M} UTC, until {who} decide."
    )
    if capacity_request.decision_due_at is not None:
        body += f" Decision due {capacity_request.decision_due_at:%Y-%m-%d %H:%M} UTC."
    _publish(
        event="request.offer_held",
        organization=capacity_request.organization,
        recipients=tenant,
        title=f"{capacity_request.reference}: capacity is held for you while it is decided",
        body=body,
        url=request_url(capacity_request),
        dedupe_key=f"request:{capacity_request.pk}:v{capacity_request.version}:offer_held",
        actor=actor,
    )


def request_due(capacity_request: CapacityRequest, *, escalate: bool) -> None:
    """A decision is nearly due (reminder to the approver at this step) or overdue
    (escalation to the capacity planners)."""
    organization = capacity_request.organization
    due = capacity_request.decision_due_at
    if escalate:
        event, recipients = "request.escalated", capacity_planners()
        title = f"{capacity_request.reference} from {organization.name} is overdue"
    else:
        event = "request.reminder"
        if capacity_request.state == S.PENDING_SECOND_APPROVAL:
            recipients = capacity_planners()
        else:
            recipients = [organization.account_manager] if organization.account_manager else []
        title = f"{capacity_request.reference} from {organization.name} is due soon"
    _publish(
        event=event,
        organization=organization,
        recipients=recipients,
        title=title,
        body=f"{capacity_request.summary}; decision due {due:%Y-%m-%d %H:%M} UTC.",
        url=staff_request_url(capacity_request),
        dedupe_key=f"request:{capacity_request.pk}:{event}:{due:%Y%m%d%H%M}",
        actor=None,
    )


def request_commented(
    capacity_request: CapacityRequest, *, comment: RequestComment, actor: User
) -> None:
    organization = capacity_request.organization
    tenant, staff = _audience(capacity_request, ("tenant", "account_manager"))
    title = f"New comment on {capacity_request.reference}"
    for recipients, url in ((tenant, request_url), (staff, staff_request_url)):
        if recipients:
            _publish(
                event="request.commented",
                organization=organization,
                recipients=recipients,
                title=title,
                body=comment.body[:500],
                url=url(capacity_request),
                dedupe_key=f"comment:{comment.pk}",
                actor=actor,
            )


_RESERVATION_TITLES = {
    V.SCHEDULED: "{ref} is scheduled",
    V.ACTIVE: "{ref} is active",
    V.COMPLETED: "{ref} completed",
    V.RELEASED_EARLY: "{ref} was released early",
    V.CANCELLED: "{ref} was cancelled",
}


def reservation_moved(reservation: Reservation, *, actor: User | None, reason: str = "") -> None:
    state = reservation.state
    webhooks.reservation_event_publish(reservation, reason=reason)
    if state == V.SCHEDULED:
        return  # the request's approval already says so
    organization = reservation.organization
    recipients = [*organization_managers(organization), requester_if_member(reservation.request)]
    title = _RESERVATION_TITLES[state].format(ref=reservation.reference)
    body = (
        f"{reservation.gpu_count} x {reservation.pool} from "
        f"{reservation.starts_at:%Y-%m-%d %H:%M} to {reservation.ends_at:%Y-%m-%d %H:%M} UTC."
    )
    if reason:
        body += f" Reason: {reason}"
    key = f"reservation:{reservation.pk}:v{reservation.version}:{state}"
    _publish(
        event=f"reservation.{state}",
        organization=organization,
        recipients=recipients,
        title=title,
        body=body,
        url=reservation_url(reservation),
        dedupe_key=key,
        actor=actor,
    )
    if state in (V.CANCELLED, V.RELEASED_EARLY) and organization.account_manager_id:
        _publish(
            event=f"reservation.{state}",
            organization=organization,
            recipients=[organization.account_manager],
            title=f"{organization.name}: {title}",
            body=body,
            url=staff_request_url(reservation.request),
            dedupe_key=key,
            actor=actor,
        )


def reservations_at_risk(reservations: Iterable[Reservation]) -> None:
    """A capacity reduction left these reservations short: their account managers and the
    capacity planners must move or settle them."""
    planners = capacity_planners()
    for reservation in reservations:
        organization = reservation.organization
        recipients = list(planners)
        if organization.account_manager_id:
            recipients.append(organization.account_manager)
        _publish(
            event="capacity.at_risk",
            organization=organization,
            recipients=recipients,
            title=f"{reservation.reference} of {organization.name} is at risk",
            body=(
                f"A capacity reduction in {reservation.pool} leaves {reservation.gpu_count} "
                f"reserved GPUs from {reservation.starts_at:%Y-%m-%d %H:%M} UTC without "
                "capacity behind them."
            ),
            url=staff_request_url(reservation.request),
            dedupe_key=f"reservation:{reservation.pk}:at_risk:{reservation.hold_id}",
            actor=None,
        )
