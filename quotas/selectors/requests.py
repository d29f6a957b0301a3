"""Reads of requests and reservations for the workflow, the pages and the API."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from accounts.models import Organization, User
from accounts.selectors import organization_list_for_staff
from quotas.models import CapacityRequest, RequestCheck, RequestEvent, Reservation
from quotas.workflow import REQUEST_AWAITING_DECISION, RequestState


def capacity_request_list(
    *,
    organization: Organization,
    state: str | None = None,
    kind: str | None = None,
    sku_id: int | None = None,
    region_id: int | None = None,
) -> QuerySet[CapacityRequest]:
    qs = CapacityRequest.objects.for_organization(organization).select_related(
        "sku", "region", "requested_by", "pool__region", "pool__sku"
    )
    if state:
        qs = qs.filter(state=state)
    if kind:
        qs = qs.filter(kind=kind)
    if sku_id:
        qs = qs.filter(sku_id=sku_id)
    if region_id:
        qs = qs.filter(region_id=region_id)
    return qs.order_by("-created_at", "-id")


def capacity_request_get(*, organization: Organization, pk: int) -> CapacityRequest:
    """One request of the organization with what its detail needs (raises DoesNotExist)."""
    return (
        CapacityRequest.objects.for_organization(organization)
        .select_related(
            "organization",
            "sku",
            "region",
            "requested_by",
            "signed_off_by",
            "decided_by",
            "first_approved_by",
            "pool__sku",
            "pool__region",
            "offer_pool__sku",
            "offer_pool__region",
            "extends_reservation",
        )
        .prefetch_related("alternative_skus", "alternative_regions")
        .get(pk=pk)
    )


def request_timeline(*, capacity_request: CapacityRequest) -> QuerySet[RequestEvent]:
    return (
        RequestEvent.objects.for_organization(capacity_request.organization_id)
        .filter(request=capacity_request)
        .select_related("actor", "reservation")
        .order_by("at", "id")
    )


def request_checks_latest(*, capacity_request: CapacityRequest) -> list[RequestCheck]:
    """The checks of the latest run (a sweeper re-dispatch may have run them again)."""
    checks = list(
        RequestCheck.objects.for_organization(capacity_request.organization_id)
        .filter(request=capacity_request)
        .order_by("-run", "id")
    )
    if not checks:
        return []
    last = checks[0].run
    return [c for c in checks if c.run == last]


def reservation_list(
    *, organization: Organization, states: list[str] | None = None
) -> QuerySet[Reservation]:
    qs = Reservation.objects.for_organization(organization).select_related(
        "pool__sku", "pool__region", "request"
    )
    if states:
        qs = qs.filter(state__in=states)
    return qs.order_by("starts_at", "id")


def requests_awaiting_decision_for_staff(*, user: User) -> QuerySet[CapacityRequest]:
    """Requests waiting on provider staff, due first: an account manager sees their
    organizations' first approvals, a capacity planner every second approval."""
    organizations = organization_list_for_staff(user=user)
    states = (
        [RequestState.PENDING_SECOND_APPROVAL]
        if user.is_capacity_planner
        else sorted(REQUEST_AWAITING_DECISION)
    )
    if user.is_superuser:
        states = sorted(REQUEST_AWAITING_DECISION)
    return (
        CapacityRequest.objects.unscoped_for_staff()
        .filter(organization__in=organizations, state__in=states)
        .select_related("organization", "sku", "region", "requested_by")
        .prefetch_related(
            Prefetch("checks", queryset=RequestCheck.all_objects.order_by("-run", "id"))
        )
        .order_by("decision_due_at", "id")
    )
