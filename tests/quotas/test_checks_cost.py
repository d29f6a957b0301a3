"""What the automatic checks cost: a constant number of queries, however much usage and how
many reservations the organization has; and the contract figures they record equal those of
the statement lines and of the request's quote."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contracts.charges import lines_total
from contracts.selectors.spend import contract_spend_lines
from quotas.checks import capacity_request_run_checks
from quotas.models import CapacityRequest, RequestCheck
from quotas.services.requests import request_value
from quotas.workflow import RequestState as S
from tests.contracts.conftest import ingest, make_reservation
from tests.factories import ContractRateFactory

from .conftest import with_capacity

pytestmark = pytest.mark.django_db

# Measured: 19 here and on the benchmark data (38, then 33 before): the notification is one
# insert, the alternatives come with the pools, the relock brings the last run, the approval
# policy and the account manager, the contract comes with its rate, and each move's timeline
# and audit events go in together.
CHECKS_MAX_QUERIES = 19


def _history(org, h100, east, west, east_pool, west_pool, *, days, reservations):
    """Usage on each of the last ``days`` days in two regions, and ``reservations`` past
    reservations each spanning a month end."""
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    rows = []
    for n in range(days):
        hour = today - timedelta(days=n + 1, hours=-(n % 24))
        rows.append((org, h100, east, hour, Decimal("1.0003") + Decimal(n % 7) / 1000))
        if n % 2:
            rows.append((org, h100, west, hour, "0.3337"))
    if rows:
        ingest(rows)
    for n in range(reservations):
        starts_at = today - timedelta(days=40 + 17 * n, hours=n, microseconds=n)
        pool = east_pool if n % 2 else west_pool
        ends_at = starts_at + timedelta(days=33, minutes=n)
        make_reservation(
            org,
            pool.sku,
            pool.region,
            starts_at,
            ends_at,
            gpu_count=8 + n,
            rate=f"{1.5 + n / 1000:.4f}",
            state="completed" if ends_at < timezone.now() else "active",
        )


def _checks_queries(new_request) -> tuple[CapacityRequest, int]:
    capacity_request = new_request(gpu_count=16)
    assert capacity_request.state == S.SUBMITTED
    with CaptureQueriesContext(connection) as queries:
        assert capacity_request_run_checks(request_id=capacity_request.pk)
    return capacity_request, len(queries.captured_queries)


@pytest.fixture
def west_rate(contract, h100, west):
    return ContractRateFactory(
        contract=contract, sku=h100, region=west, price_per_gpu_hour=Decimal("1.9337")
    )


def test_the_checks_cost_the_same_queries_whatever_the_history(
    catalog, org, h100, east, west, east_pool, west_pool, west_rate, new_request
):
    _, few = _checks_queries(new_request)
    _history(org, h100, east, west, east_pool, west_pool, days=120, reservations=8)
    capacity_request, many = _checks_queries(new_request)
    assert many == few
    assert many <= CHECKS_MAX_QUERIES
    contract_result = RequestCheck.all_objects.get(request=capacity_request, name="contract")
    assert Decimal(contract_result.figures["remaining_commitment"]) < Decimal("1000000.00")


def test_recorded_contract_figures_equal_the_lines_and_the_quote(
    catalog, org, h100, east, west, east_pool, west_pool, west_rate, contract, new_request
):
    # The requested pool is too small: the capacity check picks the alternative in the west,
    # whose own rate prices the quote.
    with_capacity(east_pool, -56)
    _history(org, h100, east, west, east_pool, west_pool, days=75, reservations=5)
    capacity_request = new_request(gpu_count=16, alternative_regions=[west])
    assert capacity_request_run_checks(request_id=capacity_request.pk)
    capacity_request.refresh_from_db()
    assert capacity_request.pool_id == west_pool.pk
    figures = RequestCheck.all_objects.get(request=capacity_request, name="contract").figures
    consumed = lines_total(contract_spend_lines(contract=contract))
    assert consumed > 0
    assert Decimal(figures["remaining_commitment"]) == contract.committed_spend - consumed
    assert Decimal(figures["value"]) == request_value(capacity_request)
    assert figures["value"] == "5197.79"  # 16 x 168 h x 1.9337 = 5,197.7856
    assert figures["rate_per_gpu_hour"] == "2.0000"


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_relock_is_prepared_once_per_connection(catalog, new_request):
    # Planning its joins cost PostgreSQL ~1.8 ms on every check; a worker keeps its connection.
    for _ in range(2):
        capacity_request = new_request()
        assert capacity_request_run_checks(request_id=capacity_request.pk)
    relocks = [s for s in _prepared_statements() if "MAX(c.run)" in s]
    assert len(relocks) == 1


def test_the_lock_pools_and_reservation_charges_are_prepared_once_per_connection(
    catalog, new_request
):
    # PostgreSQL planned them on every check: ~3.5 ms the candidate pools, ~0.7 ms the request
    # lock, ~0.5 ms the reservation charges of the contract's consumed spend (on the benchmark
    # data). Each text is the same for every request, so one prepared statement serves all.
    for _ in range(3):
        capacity_request = new_request()
        assert capacity_request_run_checks(request_id=capacity_request.pk)
    statements = _prepared_statements()
    pools = [s for s in statements if "WITH skus AS" in s]
    locks = [s for s in statements if "FOR UPDATE OF r" in s and "MAX(c.run)" not in s]
    reservation_totals = [s for s in statements if "COALESCE(SUM(" in s and "generate_series" in s]
    assert (len(pools), len(locks), len(reservation_totals)) == (1, 1, 1)
