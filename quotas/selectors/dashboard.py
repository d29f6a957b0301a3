"""What the dashboard shows.

Its lists (``dashboard_lists_get``): running and scheduled reservations, open requests with
their count, recent events and the quota per SKU and region, read as four statements written
out (prepared once per connection) rather than built by the ORM, whose compiling cost more CPU
than PostgreSQL spends on the lists. Rows come back as model instances holding what the page
shows (as ``only()`` and ``select_related`` would give them);
``tests/contracts/test_dashboard_figures.py`` holds each list equal to its ORM query.

Its money and usage figures (``dashboard_figures_get``): this month's GPU-hours and spend, and
the burn-down of the contract in force. Composed from the usage, charge and burn-down
selectors, so the dashboard shows exactly what the usage, statement and contract pages show.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Model
from django.utils import timezone

from accounts.models import Organization, User
from contracts.charges import month_start, next_month, utc_midnight
from contracts.models import Contract
from contracts.selectors.charge_sums import charges_by_month
from contracts.selectors.spend import BurnDown, contract_burn_down, contract_burn_down_windows
from contracts.selectors.statements import statement_currency
from portal.prepared import prepared_cursor
from quotas.models import (
    CapacityPool,
    CapacityRequest,
    GpuSku,
    OnDemandQuotaChange,
    Region,
    RequestEvent,
    Reservation,
)
from quotas.selectors.pages import STATE_LABELS, waiting_on
from quotas.workflow import REQUEST_OPEN, ReservationState
from usage.fleet import contracts_in_force
from usage.selectors import usage_aggregate_rows

ZERO_HOURS = Decimal("0")
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class DashboardFigures:
    month: date  # first day of the current UTC month
    as_of: datetime
    gpu_hours: Decimal  # GPU-hours metered this month so far
    spend: Decimal | None  # this month's charges so far (usage and reservations); None: hidden
    currency: str  # of ``spend``: the statements' currency, which every contract is in
    contract: Contract | None  # the contract in force now
    burn_down: BurnDown | None


def contract_in_force_now(in_force: list[tuple[Contract, date]], now: datetime) -> Contract | None:
    """``contracts.selectors.contract_active_for(at=now)`` among ``in_force`` (the
    organization's contracts in force over a span holding today, the most recently started
    first, as ``usage.fleet.contracts_in_force`` reads them): the first active one whose term
    holds today (UTC)."""
    today = now.astimezone(UTC).date()
    for contract, _ in in_force:
        active = contract.status == Contract.Status.ACTIVE
        if active and contract.term_start <= today < contract.term_end:
            return contract
    return None


def dashboard_figures_get(
    *, organization: Organization, include_billing: bool, now: datetime | None = None
) -> DashboardFigures:
    """Month-to-date GPU-hours (UTC month, from the rollups); with ``include_billing``, the
    month's spend to date (the open statement's usage and reservation charges, without
    adjustments of earlier months) and the burn-down of the contract in force, in its currency.
    Four queries: the month's usage, the contracts, and the charges per month of the
    burn-down's windows and of this month, summed in the database (``charges_by_month``)."""
    now = now or timezone.now()
    month = month_start(now.date())
    rows = usage_aggregate_rows(
        organization=organization, start=month, end=next_month(month), granularity="month"
    )
    gpu_hours = sum((row.gpu_hours for row in rows), ZERO_HOURS)
    spend = contract = burn_down = None
    currency = statement_currency(organization)
    if include_billing:
        # Every contract that ever priced usage, read once: the one in force now among them
        # (``contract_active_for``), and what the charges need.
        in_force = contracts_in_force(
            organizations=[organization.pk], start=date.min, end=date.max
        ).get(organization.pk, [])
        contract = contract_in_force_now(in_force, now)
        windows = [] if contract is None else contract_burn_down_windows(contract=contract, now=now)
        # This month's charges: one more window of the same read.
        windows.append((utc_midnight(month), now))
        charges = charges_by_month(organization=organization, windows=windows, in_force=in_force)
        spend = sum(charges[-1].values(), ZERO)
        if contract is not None:
            burn_down = contract_burn_down(contract=contract, now=now, charges=charges[:-1])
            currency = contract.currency
    return DashboardFigures(
        month=month,
        as_of=now,
        gpu_hours=gpu_hours,
        spend=spend,
        currency=currency,
        contract=contract,
        burn_down=burn_down,
    )


# --- Lists -------------------------------------------------------------------------------------
class _Columns:
    """Some columns of a model in a statement (in the model's field order, as ``from_db``
    reads them) and the instances built from them: the other fields deferred."""

    def __init__(self, model: type[Model], alias: str, names: Iterable[str]):
        wanted = set(names)
        fields = [f for f in model._meta.concrete_fields if f.attname in wanted]
        self.model = model
        self.attnames = [f.attname for f in fields]
        self.sql = ", ".join(f"{alias}.{connection.ops.quote_name(f.column)}" for f in fields)

    def __len__(self) -> int:
        return len(self.attnames)

    def load(self, values: Sequence) -> Model:
        return self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, values)


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


RESERVATION = ("id", "organization_id", "pool_id", "gpu_count", "starts_at", "ends_at", "state")
POOL = ("id", "sku_id", "region_id")
SKU = ("id", "name")
REGION = ("id", "code")
OPEN_REQUEST = (
    "id",
    "organization_id",
    "kind",
    "state",
    "sku_id",
    "region_id",
    "gpu_count",
    "starts_at",
    "on_demand_limit",
    "decision_due_at",
    "offer_expires_at",
    "created_at",
)
EVENT = (
    "id",
    "organization_id",
    "request_id",
    "reservation_id",
    "from_state",
    "to_state",
    "actor_id",
    "at",
)
ACTOR = ("id", "full_name", "email")


@dataclass(frozen=True)
class _Statements:
    reservations: str
    reservation: _Columns
    pool: _Columns
    sku: _Columns
    region: _Columns
    requests: str
    request: _Columns
    events: str
    event: _Columns
    actor: _Columns
    quota: str


@functools.cache
def _statements() -> _Statements:
    """The lists' statements, written once from the models' names (values are parameters)."""
    reservation = _Columns(Reservation, "r", RESERVATION)
    pool, sku, region = (
        _Columns(CapacityPool, "p", POOL),
        _Columns(GpuSku, "s", SKU),
        _Columns(Region, "g", REGION),
    )
    r_org, r_state = _column(Reservation, "organization"), _column(Reservation, "state")
    reservations_of = (
        f"SELECT {reservation.sql}, {pool.sql}, {sku.sql}, {region.sql} "  # noqa: S608 (names from the models)
        f"FROM {_table(Reservation)} r "
        f"JOIN {_table(CapacityPool)} p ON p.id = r.{_column(Reservation, 'pool')} "
        f"JOIN {_table(GpuSku)} s ON s.id = p.{_column(CapacityPool, 'sku')} "
        f"JOIN {_table(Region)} g ON g.id = p.{_column(CapacityPool, 'region')} "
        f"WHERE r.{r_org} = %(organization)s AND r.{r_state} = "
    )
    reservations = (
        f"({reservations_of}%(active)s ORDER BY r.{_column(Reservation, 'ends_at')}, r.id "
        f"LIMIT %(limit)s) UNION ALL "
        f"({reservations_of}%(scheduled)s ORDER BY r.{_column(Reservation, 'starts_at')}, r.id "
        f"LIMIT %(limit)s)"
    )

    request = _Columns(CapacityRequest, "r", OPEN_REQUEST)

    def q(name: str) -> str:
        return f"r.{_column(CapacityRequest, name)}"

    requests = (
        f"SELECT {request.sql}, {sku.sql}, {region.sql}, COUNT(*) OVER () "  # noqa: S608
        f"FROM {_table(CapacityRequest)} r "
        f"JOIN {_table(GpuSku)} s ON s.id = {q('sku')} "
        f"JOIN {_table(Region)} g ON g.id = {q('region')} "
        f"WHERE {q('organization')} = %(organization)s AND {q('state')} = ANY(%(open)s) "
        f"ORDER BY COALESCE({q('decision_due_at')}, {q('offer_expires_at')}) ASC NULLS LAST, "
        f"{q('created_at')} ASC, r.id LIMIT %(limit)s"
    )

    event, actor = _Columns(RequestEvent, "e", EVENT), _Columns(User, "u", ACTOR)
    e_at = _column(RequestEvent, "at")
    events = (
        f"SELECT {event.sql}, {actor.sql} FROM {_table(RequestEvent)} e "  # noqa: S608
        f"LEFT JOIN {_table(User)} u ON u.id = e.{_column(RequestEvent, 'actor')} "
        f"WHERE e.{_column(RequestEvent, 'organization')} = %(organization)s "
        f"ORDER BY e.{e_at} DESC, e.id DESC LIMIT %(limit)s"
    )

    # ``quotas.selectors.quotas.organization_quota_at`` (reservations running at the instant,
    # one released early until its release; the last on-demand limit effective by then) per
    # SKU and region where either is not zero, and the GPUs of scheduled reservations still
    # to start, with the names a row shows.
    def res(name: str) -> str:
        return f"r.{_column(Reservation, name)}"

    def change(name: str) -> str:
        return f"c.{_column(OnDemandQuotaChange, name)}"

    pool_join = (
        f"FROM {_table(Reservation)} r "
        f"JOIN {_table(CapacityPool)} p ON p.id = {res('pool')} "
        f"WHERE {res('organization')} = %(organization)s "
    )
    sku_of, region_of = _column(CapacityPool, "sku"), _column(CapacityPool, "region")
    quota = (
        f"WITH reserved AS ("  # noqa: S608
        f"SELECT p.{sku_of} AS sku_id, p.{region_of} AS region_id, SUM({res('gpu_count')}) AS n "
        f"{pool_join}AND {res('state')} <> %(cancelled)s AND {res('starts_at')} <= %(at)s "
        f"AND CASE WHEN {res('state')} = %(released_early)s "
        f"THEN COALESCE({res('ended_at')}, {res('ends_at')}) ELSE {res('ends_at')} END > %(at)s "
        f"GROUP BY 1, 2), "
        f"on_demand AS ("
        f"SELECT DISTINCT ON ({change('sku')}, {change('region')}) {change('sku')} AS sku_id, "
        f"{change('region')} AS region_id, {change('new_limit')} AS n "
        f"FROM {_table(OnDemandQuotaChange)} c "
        f"WHERE {change('organization')} = %(organization)s AND {change('effective_at')} <= %(at)s "
        f"ORDER BY {change('sku')}, {change('region')}, {change('effective_at')} DESC, c.id DESC), "
        f"scheduled AS ("
        f"SELECT p.{sku_of} AS sku_id, p.{region_of} AS region_id, SUM({res('gpu_count')}) AS n "
        f"{pool_join}AND {res('state')} = %(scheduled)s AND {res('starts_at')} > %(at)s "
        f"GROUP BY 1, 2), "
        f"now AS ("
        f"SELECT COALESCE(reserved.sku_id, on_demand.sku_id) AS sku_id, "
        f"COALESCE(reserved.region_id, on_demand.region_id) AS region_id, "
        f"COALESCE(reserved.n, 0) AS reserved, COALESCE(on_demand.n, 0) AS on_demand "
        f"FROM reserved FULL JOIN on_demand USING (sku_id, region_id) "
        f"WHERE COALESCE(reserved.n, 0) <> 0 OR COALESCE(on_demand.n, 0) <> 0) "
        f"SELECT s.name, g.code, COALESCE(now.reserved, 0), COALESCE(now.on_demand, 0), "
        f"COALESCE(scheduled.n, 0) "
        f"FROM now FULL JOIN scheduled USING (sku_id, region_id) "
        f"JOIN {_table(GpuSku)} s ON s.id = sku_id JOIN {_table(Region)} g ON g.id = region_id"
    )
    return _Statements(
        reservations=reservations,
        reservation=reservation,
        pool=pool,
        sku=sku,
        region=region,
        requests=requests,
        request=request,
        events=events,
        event=event,
        actor=actor,
        quota=quota,
    )


def _parts(row: Sequence, *columns: _Columns) -> list[Sequence]:
    """``row`` cut into the values of each of ``columns``, in order."""
    parts, start = [], 0
    for of in columns:
        parts.append(row[start : start + len(of)])
        start += len(of)
    return parts


def _cached(load: Callable[[Sequence], Model], seen: dict) -> Callable[[Sequence], Model]:
    """``load``, building one instance per primary key (the first value) for the page."""

    def loader(values: Sequence) -> Model:
        instance = seen.get(values[0])
        if instance is None:
            instance = seen[values[0]] = load(values)
        return instance

    return loader


@dataclass(frozen=True)
class QuotaRow:
    sku_name: str
    region_code: str
    reserved_now: int  # GPUs of reservations running now
    on_demand_limit: int
    scheduled_next: int  # GPUs of scheduled reservations still to start

    @property
    def total_now(self) -> int:
        return self.reserved_now + self.on_demand_limit


def dashboard_lists_get(
    *, organization: Organization, limit: int = 10, now: datetime | None = None
) -> dict:
    """The dashboard's lists: running reservations (soonest to end first) and scheduled ones
    (soonest to start first), the first ``limit`` of each, with their pools' SKU and region;
    the first ``limit`` open requests (soonest due first, undated last) with their SKU and
    region, on whom each waits, and how many are open; the ``limit`` latest events with their
    actor; the quota per SKU and region now (``organization_quota_at``) with the GPUs
    scheduled to start later. Four statements."""
    now = now or timezone.now()
    plan = _statements()
    params = {
        "organization": organization.pk,
        "limit": limit,
        "at": now,
        "active": ReservationState.ACTIVE,
        "scheduled": ReservationState.SCHEDULED,
        "cancelled": ReservationState.CANCELLED,
        "released_early": ReservationState.RELEASED_EARLY,
        "open": sorted(REQUEST_OPEN),
    }
    skus, regions, pools = {}, {}, {}
    sku, region = _cached(plan.sku.load, skus), _cached(plan.region.load, regions)
    pool = _cached(plan.pool.load, pools)
    with prepared_cursor() as cursor:
        cursor.execute(plan.reservations, params)
        reservation_rows = cursor.fetchall()
        cursor.execute(plan.requests, params)
        request_rows = cursor.fetchall()
        cursor.execute(plan.events, params)
        event_rows = cursor.fetchall()
        cursor.execute(plan.quota, params)
        quota_rows = cursor.fetchall()

    active, upcoming = [], []
    for row in reservation_rows:
        own, of_pool, of_sku, of_region = _parts(
            row, plan.reservation, plan.pool, plan.sku, plan.region
        )
        reservation = plan.reservation.load(own)
        reservation.pool = pool(of_pool)
        reservation.pool.sku = sku(of_sku)
        reservation.pool.region = region(of_region)
        (active if reservation.state == ReservationState.ACTIVE else upcoming).append(reservation)
    # Each list in its statement's order, whatever order the union returns them in.
    active.sort(key=lambda r: (r.ends_at, r.pk))
    upcoming.sort(key=lambda r: (r.starts_at, r.pk))

    requests = []
    for row in request_rows:
        own, of_sku, of_region = _parts(row, plan.request, plan.sku, plan.region)
        capacity_request = plan.request.load(own)
        capacity_request.sku = sku(of_sku)
        capacity_request.region = region(of_region)
        capacity_request.organization = organization
        requests.append(capacity_request)

    events = []
    for row in event_rows:
        own, of_actor = _parts(row, plan.event, plan.actor)
        event = plan.event.load(own)
        if event.actor_id is not None:
            event.actor = plan.actor.load(of_actor)
        if event.request_id is not None:
            event.request = CapacityRequest.from_db(DEFAULT_DB_ALIAS, ["id"], [event.request_id])
        if event.reservation_id is not None:
            event.reservation = Reservation.from_db(
                DEFAULT_DB_ALIAS, ["id"], [event.reservation_id]
            )
        event.from_label = STATE_LABELS.get(event.from_state, event.from_state)
        event.to_label = STATE_LABELS.get(event.to_state, event.to_state)
        events.append(event)

    return {
        "recent_events": events,
        "active_reservations": active,
        "upcoming_reservations": upcoming,
        "waiting_requests": [(r, waiting_on(r)) for r in requests],
        "open_request_count": request_rows[0][-1] if request_rows else 0,
        "quota_rows": sorted(
            (QuotaRow(*row) for row in quota_rows),
            key=lambda row: (row.sku_name, row.region_code),
        ),
    }
