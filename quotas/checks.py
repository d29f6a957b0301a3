"""The automatic checks run on every submitted request, and what their outcome decides.

Each check returns one ``CheckResult`` (pass / warn / fail, a reason a person can read, and the
figures behind it); every result is stored as a ``RequestCheck`` row of the run. Then:

- a hard failure (organization suspended) rejects the request;
- no capacity anywhere acceptable: waitlisted when the tenant asked for it, else to the account
  manager flagged, where the tenant may still choose the waitlist;
- a warning (outside contract, beyond a soft policy limit) goes to the account manager flagged;
- everything passing and within the organization's auto-approval policy (and below the second
  approval thresholds) is approved at once: capacity held under the pool lock, reservation
  created and quote frozen in the same transaction;
- anything else waits for the account manager.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import Organization, User
from portal.errors import ConflictError, DomainError
from portal.prepared import prepared_cursor
from portal.rows import insert_together
from quotas import notify
from quotas.models import ApprovalPolicy, CapacityPool, CapacityRequest, RequestCheck
from quotas.workflow import RequestState

S = RequestState
PASS, WARN, FAIL = (RequestCheck.Outcome.PASS, RequestCheck.Outcome.WARN, RequestCheck.Outcome.FAIL)


@dataclass
class CheckResult:
    name: str
    outcome: str
    reason: str
    figures: dict = field(default_factory=dict)
    hard: bool = False


@dataclass
class ChecksContext:
    """What the checks learnt that the decision needs."""

    pool_id: int | None = None
    pool: CapacityPool | None = None  # that pool, with its SKU and region (for the quote)
    candidates: list[CapacityPool] | None = None  # every acceptable pool, best first
    value: Decimal = Decimal("0")
    within_contract: bool = False
    policy: ApprovalPolicy | None = None  # the organization's, when read with the row lock


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def check_standing(capacity_request: CapacityRequest, ctx: ChecksContext) -> CheckResult:
    organization = capacity_request.organization
    if organization.status == Organization.Status.SUSPENDED:
        return CheckResult(
            "standing",
            FAIL,
            f"{organization.name} is suspended: no new capacity until it is reinstated.",
            {"status": organization.status},
            hard=True,
        )
    return CheckResult("standing", PASS, "The organization is in good standing.")


def check_capacity(capacity_request: CapacityRequest, ctx: ChecksContext) -> CheckResult:
    from quotas.selectors.availability import pool_earliest_start, pool_free_min_by_pool
    from quotas.services._base import candidate_pools

    pools = ctx.candidates = candidate_pools(capacity_request)
    count = capacity_request.gpu_count
    starts_at, ends_at = capacity_request.starts_at, capacity_request.ends_at
    free = pool_free_min_by_pool(pools=pools, starts_at=starts_at, ends_at=ends_at)
    figures = {
        "requested": count,
        "pools": [{"pool": p.pk, "label": str(p), "free_min": free.get(p.pk, 0)} for p in pools],
    }
    primary = next(
        (
            p
            for p in pools
            if p.sku_id == capacity_request.sku_id and p.region_id == capacity_request.region_id
        ),
        None,
    )
    if primary is not None and free.get(primary.pk, 0) >= count:
        ctx.pool_id, ctx.pool = primary.pk, primary
        return CheckResult(
            "capacity",
            PASS,
            f"{count} GPUs fit in {primary} over the whole window "
            f"(at least {free[primary.pk]} free).",
            figures,
        )
    fitting = [p for p in pools if free.get(p.pk, 0) >= count]
    if fitting:
        ctx.pool_id, ctx.pool = fitting[0].pk, fitting[0]
        return CheckResult(
            "capacity",
            WARN,
            f"The requested pool is short; {count} GPUs fit in the alternative {fitting[0]}.",
            figures,
        )
    if primary is not None:
        earliest = pool_earliest_start(
            pool=primary,
            gpu_count=count,
            duration=ends_at - starts_at,
            not_before=starts_at,
            horizon=timedelta(days=90),
        )
        figures["earliest_start"] = earliest.isoformat() if earliest else None
    most = max(free.values(), default=0)
    return CheckResult(
        "capacity",
        FAIL,
        f"No acceptable pool has {count} GPUs free over the whole window (at most {most}).",
        figures,
    )


def _quote_pool(capacity_request: CapacityRequest, ctx: ChecksContext) -> CapacityPool:
    """The pool the request is priced in, as ``request_value`` picks it: the one the capacity
    check chose, else the request's own, else the best acceptable one."""
    from quotas.services._base import candidate_pools

    if ctx.pool is not None:
        capacity_request.pool = ctx.pool  # loaded with its SKU and region: no re-read
    if capacity_request.pool_id:
        return capacity_request.pool
    pools = ctx.candidates if ctx.candidates is not None else candidate_pools(capacity_request)
    if not pools:
        raise DomainError(f"{capacity_request.sku} is no longer offered there.", field="region")
    return pools[0]


def check_contract(capacity_request: CapacityRequest, ctx: ChecksContext) -> CheckResult:
    from contracts.selectors import contract_rate_for, contract_remaining_commitment
    from quotas.pricing import contract_and_rate_for, quote_price_from

    organization = capacity_request.organization
    at = capacity_request.starts_at or timezone.now()
    # The contract and its rate for what was asked; the quote reuses it when priced in that pool.
    contract, rate = contract_and_rate_for(
        organization=organization,
        at=at,
        sku_id=capacity_request.sku_id,
        region_id=capacity_request.region_id,
    )
    if capacity_request.is_reservation:
        # request_value(capacity_request), from the contract and rate read here.
        pool = _quote_pool(capacity_request, ctx)
        same_key = (pool.sku_id, pool.region_id) == (
            capacity_request.sku_id,
            capacity_request.region_id,
        )
        pool_rate = (
            rate
            if same_key or contract is None
            else contract_rate_for(contract=contract, sku=pool.sku, region=pool.region)
        )
        ctx.value = quote_price_from(
            sku=pool.sku,
            gpu_count=capacity_request.gpu_count,
            starts_at=capacity_request.starts_at,
            ends_at=capacity_request.ends_at,
            contract=contract,
            contract_rate=pool_rate,
        ).total
    if contract is None:
        return CheckResult(
            "contract",
            WARN,
            "No active contract covers the start: the list price applies.",
            {"value": str(ctx.value)},
        )
    figures = {
        "contract": contract.number,
        "term_end": contract.term_end.isoformat(),
        "currency": contract.currency,
        "value": str(ctx.value),
    }
    problems = []
    if capacity_request.ends_at is not None and capacity_request.ends_at.date() > contract.term_end:
        problems.append(f"the window runs past the contract's end ({contract.term_end})")
    if rate is None:
        problems.append(f"contract {contract.number} has no rate for {capacity_request.sku}")
    else:
        figures["rate_per_gpu_hour"] = str(rate.price_per_gpu_hour)
    remaining = contract_remaining_commitment(contract=contract)
    figures["remaining_commitment"] = str(remaining)
    if problems:
        return CheckResult("contract", WARN, "; ".join(problems).capitalize() + ".", figures)
    ctx.within_contract = True
    note = (
        f"{_money(ctx.value)} {contract.currency} goes beyond the remaining commitment "
        f"({_money(remaining)})."
        if ctx.value > remaining
        else f"Within the remaining commitment of {_money(remaining)} {contract.currency}."
    )
    return CheckResult("contract", PASS, f"Covered by contract {contract.number}. {note}", figures)


def check_policy(capacity_request: CapacityRequest, ctx: ChecksContext) -> CheckResult:
    problems = []
    figures: dict = {}
    if capacity_request.is_reservation:
        count = capacity_request.gpu_count
        duration = capacity_request.ends_at - capacity_request.starts_at
        lead = capacity_request.starts_at - timezone.now()
        figures = {
            "gpu_count": count,
            "duration_days": round(duration.total_seconds() / 86400, 2),
            "lead_hours": round(lead.total_seconds() / 3600, 1),
        }
        if duration > timedelta(days=settings.QUOTAS_POLICY_MAX_DURATION_DAYS):
            problems.append(f"longer than {settings.QUOTAS_POLICY_MAX_DURATION_DAYS} days")
        if lead < timedelta(hours=settings.QUOTAS_POLICY_MIN_LEAD_HOURS):
            problems.append(
                f"starts within {settings.QUOTAS_POLICY_MIN_LEAD_HOURS} hours of the request"
            )
    else:
        count = capacity_request.on_demand_limit
        figures = {"on_demand_limit": count}
    if count > settings.QUOTAS_POLICY_MAX_GPUS:
        problems.insert(0, f"more than {settings.QUOTAS_POLICY_MAX_GPUS} GPUs")
    if problems:
        return CheckResult(
            "policy", WARN, "Beyond the usual limits: " + ", ".join(problems) + ".", figures
        )
    return CheckResult("policy", PASS, "Within the policy limits.", figures)


def checks_for(capacity_request: CapacityRequest):
    if capacity_request.is_reservation:
        return (check_standing, check_capacity, check_contract, check_policy)
    return (check_standing, check_contract, check_policy)


def _needs_planner(capacity_request: CapacityRequest, ctx: ChecksContext) -> bool:
    """Above the second-approval threshold. Such a request never joins the waitlist on its
    own: a waitlist offer is booked without a decision, and this one needs a planner's."""
    from quotas.services.requests import needs_second_approval

    return needs_second_approval(capacity_request, value=ctx.value)


def _auto_approvable(capacity_request: CapacityRequest, ctx: ChecksContext) -> bool:
    from quotas.services.requests import approval_policy_for, needs_second_approval

    policy = ctx.policy or approval_policy_for(capacity_request.organization)
    count = (
        capacity_request.gpu_count
        if capacity_request.is_reservation
        else capacity_request.on_demand_limit
    )
    if policy.auto_approve_max_gpus <= 0 or count > policy.auto_approve_max_gpus:
        return False
    if ctx.value > policy.auto_approve_max_value:
        return False
    if policy.auto_approve_requires_contract and not ctx.within_contract:
        return False
    return not needs_second_approval(capacity_request, value=ctx.value)


def capacity_request_run_checks(*, request_id: int) -> bool:
    """Run the checks of a submitted request and move it on. Idempotent and safe under double
    delivery: each step locks the request and does nothing unless it is still where that step
    expects it. Returns False when there was nothing to do."""
    from quotas.services._base import request_lock, request_move

    with transaction.atomic():
        try:
            capacity_request = request_lock(request_id)
        except CapacityRequest.DoesNotExist:
            return False  # a message about a request that is gone: nothing to do
        if capacity_request.state == S.SUBMITTED:
            request_move(capacity_request, to_state=S.CHECKING, actor=None)
        elif capacity_request.state != S.CHECKING:
            return False
    # Visible as "checking" from here on; a crash before the next commit leaves it there for
    # the sweeper to re-dispatch.
    with transaction.atomic():
        relocked = _relock_unchanged(capacity_request)
        if relocked is None:
            capacity_request = request_lock(request_id)
            if capacity_request.state != S.CHECKING:
                return False
        _decide(capacity_request, relocked)
    return True


@dataclass
class _Relocked:
    """What the relock read besides the row: the last run of the checks and the organization's
    approval policy (None: the default)."""

    last_run: int
    policy: ApprovalPolicy | None


@functools.cache
def _relock_sql() -> str:
    names = {
        "request": CapacityRequest._meta.db_table,
        "check": RequestCheck._meta.db_table,
        "organization": Organization._meta.db_table,
        "policy": ApprovalPolicy._meta.db_table,
        "user": User._meta.db_table,
    }
    quote = connection.ops.quote_name
    policy = ", ".join(f"p.{quote(f.column)}" for f in ApprovalPolicy._meta.concrete_fields)
    user = ", ".join(f"u.{quote(f.column)}" for f in User._meta.concrete_fields)
    t = {key: quote(value) for key, value in names.items()}
    return f"""
SELECT r.state, r.version, r.updated_at,
       (SELECT MAX(c.run) FROM {t["check"]} c
         WHERE c.organization_id = r.organization_id AND c.request_id = r.id),
       o.account_manager_id, {policy}, {user}
  FROM {t["request"]} r
  JOIN {t["organization"]} o ON o.id = r.organization_id
  LEFT JOIN {t["policy"]} p ON p.organization_id = r.organization_id
  LEFT JOIN {t["user"]} u ON u.id = o.account_manager_id
 WHERE r.id = %s
   FOR UPDATE OF r
"""  # noqa: S608 (names from the models)


def _relock_unchanged(capacity_request: CapacityRequest) -> _Relocked | None:
    """Lock the request's row again; when it is still as the first step left it (in
    ``checking``, same version and last update: every write that matters bumps both), the
    object in hand is current and need not be read again with its related rows, and what the
    decision reads besides (the last run, the approval policy, the account manager) comes in
    the same statement. None when it changed.

    Prepared once per connection (portal/prepared.py): PostgreSQL spent ~1.8 ms planning its
    joins on every check and ~0.5 ms running it."""
    with prepared_cursor() as cursor:
        cursor.execute(_relock_sql(), [capacity_request.pk])
        row = cursor.fetchone()
    if row is None or tuple(row[:3]) != (
        S.CHECKING,
        capacity_request.version,
        capacity_request.updated_at,
    ):
        return None
    policy_fields = [f.attname for f in ApprovalPolicy._meta.concrete_fields]
    user_fields = [f.attname for f in User._meta.concrete_fields]
    policy_row = row[5 : 5 + len(policy_fields)]
    user_row = row[5 + len(policy_fields) :]
    organization = capacity_request.organization
    organization.account_manager = (
        None if row[4] is None else User.from_db(connection.alias, user_fields, user_row)
    )
    policy = None
    if policy_row[0] is not None:
        policy = ApprovalPolicy.from_db(connection.alias, policy_fields, policy_row)
        policy.organization = organization
    return _Relocked(last_run=row[3] or 0, policy=policy)


def _decide(capacity_request: CapacityRequest, relocked: _Relocked | None = None) -> None:
    from quotas.services._base import request_move
    from quotas.services.decisions import pending_approval_enter, request_grant

    ctx = ChecksContext()
    if relocked is None:
        last_run = (
            RequestCheck.objects.for_organization(capacity_request.organization_id)
            .filter(request=capacity_request)
            .aggregate(last=Max("run"))["last"]
        )
    else:
        last_run = relocked.last_run
        ctx.policy = relocked.policy or ApprovalPolicy(organization=capacity_request.organization)
    run = (last_run or 0) + 1
    results = [check(capacity_request, ctx) for check in checks_for(capacity_request)]
    insert_together(
        [
            RequestCheck(
                organization_id=capacity_request.organization_id,
                request=capacity_request,
                run=run,
                name=r.name,
                outcome=r.outcome,
                reason=r.reason,
                figures=r.figures,
            )
            for r in results
        ]
    )
    by_name = {r.name: r for r in results}
    hard = [r for r in results if r.outcome == FAIL and r.hard]
    capacity = by_name.get("capacity")
    capacity_request.pool_id = ctx.pool_id
    if capacity is not None:
        capacity_request.capacity_available = capacity.outcome != FAIL
    fields = ("pool", "capacity_available", "flagged")

    if hard:
        reason = hard[0].reason
        capacity_request.decision_reason = reason
        capacity_request.flagged = True
        request_move(
            capacity_request,
            to_state=S.REJECTED,
            actor=None,
            reason=reason,
            update_fields=(*fields, "decision_reason"),
        )
    elif (
        capacity is not None
        and capacity.outcome == FAIL
        and capacity_request.waitlist_if_unavailable
        and not _needs_planner(capacity_request, ctx)
    ):
        capacity_request.flagged = True
        request_move(
            capacity_request,
            to_state=S.WAITLISTED,
            actor=None,
            reason=capacity.reason,
            update_fields=fields,
        )
    elif any(r.outcome != PASS for r in results):
        capacity_request.flagged = True
        reasons = " ".join(r.reason for r in results if r.outcome != PASS)
        pending_approval_enter(capacity_request, actor=None, reason=reasons, update_fields=fields)
    elif _auto_approvable(capacity_request, ctx):
        capacity_request.flagged = False
        capacity_request.save(update_fields=list(fields))
        try:
            with transaction.atomic():
                request_grant(
                    capacity_request, actor=None, reason="Approved automatically by policy."
                )
        except ConflictError as exc:
            # Capacity went between the check and the hold: a person decides.
            capacity_request.refresh_from_db()
            capacity_request.flagged = True
            capacity_request.capacity_available = False
            pending_approval_enter(
                capacity_request, actor=None, reason=exc.message, update_fields=fields
            )
    else:
        capacity_request.flagged = False
        pending_approval_enter(capacity_request, actor=None, update_fields=fields)
    notify.request_moved(capacity_request, actor=None, reason=capacity_request.decision_reason)
