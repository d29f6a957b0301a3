"""Reads of requests and reservations for the workflow, the pages and the API."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import Prefetch, QuerySet

from accounts.models import Organization, User
from accounts.selectors import organization_list_for_staff
from quotas.models import (
    CapacityPool,
    CapacityRequest,
    GpuSku,
    Region,
    RequestCheck,
    RequestEvent,
    Reservation,
)
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


def capacity_request_alternative_codes(
    *, request_ids: Iterable[int], relation: str
) -> dict[int, list[str]]:
    """{request id: [codes]} of the requests' ``alternative_skus`` or ``alternative_regions``,
    in the related model's order, in one query (no model instance, no queryset per request)."""
    request_ids = list(request_ids)
    if not request_ids:
        return {}
    field = CapacityRequest._meta.get_field(relation)
    through = field.remote_field.through
    target = field.m2m_reverse_field_name()
    ordering = [f"{target}__{name}" for name in field.related_model._meta.ordering]
    rows = (
        through.objects.filter(**{f"{field.m2m_field_name()}_id__in": request_ids})
        .order_by(*ordering, f"{target}_id")
        .values_list(f"{field.m2m_field_name()}_id", f"{target}__code")
    )
    codes: dict[int, list[str]] = {}
    for request_id, code in rows:
        codes.setdefault(request_id, []).append(code)
    return codes


def capacity_request_page_refs(
    *, request_ids: Iterable[int], pool_ids: Iterable[int]
) -> tuple[dict[int, tuple[str, str]], dict[str, dict[int, list[str]]]]:
    """What a page of requests names by id, in one query: {pool id: (SKU code, region code)}
    of the pools, and {relation: {request id: [codes]}} of both alternatives, in the orders of
    ``capacity_request_alternative_codes``."""
    request_ids, pool_ids = sorted(set(request_ids)), sorted(set(pool_ids))
    pools: dict[int, tuple[str, str]] = {}
    alternatives: dict[str, dict[int, list[str]]] = {
        "alternative_skus": {},
        "alternative_regions": {},
    }
    if not request_ids and not pool_ids:
        return pools, alternatives
    skus_m2m = CapacityRequest._meta.get_field("alternative_skus")
    regions_m2m = CapacityRequest._meta.get_field("alternative_regions")
    names = {
        "sku": GpuSku._meta.db_table,
        "region": Region._meta.db_table,
        "pool": CapacityPool._meta.db_table,
        "skus": skus_m2m.m2m_db_table(),
        "skus_request": skus_m2m.m2m_column_name(),
        "skus_sku": skus_m2m.m2m_reverse_name(),
        "regions": regions_m2m.m2m_db_table(),
        "regions_request": regions_m2m.m2m_column_name(),
        "regions_region": regions_m2m.m2m_reverse_name(),
    }
    # Orders as the models declare them (GpuSku by name, Region by code), then by id.
    sql = """
        SELECT 's', t.{skus_request}, s.code, s.name, s.id
          FROM {skus} t JOIN {sku} s ON s.id = t.{skus_sku}
         WHERE t.{skus_request} = ANY(%(requests)s::bigint[])
        UNION ALL
        SELECT 'r', t.{regions_request}, r.code, r.code, r.id
          FROM {regions} t JOIN {region} r ON r.id = t.{regions_region}
         WHERE t.{regions_request} = ANY(%(requests)s::bigint[])
        UNION ALL
        SELECT 'p', p.id, s.code, r.code, p.id
          FROM {pool} p JOIN {sku} s ON s.id = p.sku_id JOIN {region} r ON r.id = p.region_id
         WHERE p.id = ANY(%(pools)s::bigint[])
        ORDER BY 1, 4, 5
    """.format(**{key: connection.ops.quote_name(value) for key, value in names.items()})  # noqa: S608 (table names from the models)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"requests": request_ids, "pools": pool_ids})
        rows = cursor.fetchall()
    relation = {"s": "alternative_skus", "r": "alternative_regions"}
    for kind, key, code, second, _ in rows:
        if kind == "p":
            pools[key] = (code, second)
        else:
            alternatives[relation[kind]].setdefault(key, []).append(code)
    return pools, alternatives


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
