"""Each automatic check on its own: outcome, reason and figures recorded."""

from datetime import timedelta
from decimal import Decimal

import pytest

from quotas.checks import (
    ChecksContext,
    capacity_request_run_checks,
    check_capacity,
    check_contract,
    check_policy,
    check_standing,
)
from quotas.models import RequestCheck
from quotas.workflow import RequestState as S

from .conftest import soon

pytestmark = pytest.mark.django_db


def test_capacity_check_passes_with_the_free_figure(catalog, request_in_state):
    result = check_capacity(request_in_state(S.CHECKING, gpu_count=16), ChecksContext())
    assert result.outcome == "pass"
    assert result.figures["pools"][0]["free_min"] == 64


def test_capacity_check_fails_with_the_earliest_start(catalog, org, east_pool, request_in_state):
    from quotas.capacity import hold_place

    blocked = request_in_state(S.CHECKING, gpu_count=64)
    hold_place(
        pool=east_pool,
        organization=org,
        gpu_count=8,
        starts_at=blocked.starts_at,
        ends_at=blocked.starts_at + timedelta(days=1),
        kind="reservation",
    )
    result = check_capacity(blocked, ChecksContext())
    assert result.outcome == "fail"
    assert result.figures["earliest_start"] == (blocked.starts_at + timedelta(days=1)).isoformat()
    assert "at most 56" in result.reason


def test_contract_check_passes_within_the_contract(catalog, request_in_state):
    ctx = ChecksContext()
    result = check_contract(request_in_state(S.CHECKING, gpu_count=16), ctx)
    assert result.outcome == "pass"
    assert ctx.within_contract
    assert ctx.value == Decimal("16") * 7 * 24 * 2
    assert result.figures["rate_per_gpu_hour"] == "2.0000"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"status": "terminated"}, "No active contract"),
        ({"term_end_days": 5}, "past the contract's end"),
    ],
)
def test_contract_check_warns_outside_the_contract(
    catalog, contract, request_in_state, change, needle
):
    if "status" in change:
        contract.status = change["status"]
    if "term_end_days" in change:
        contract.term_end = soon(change["term_end_days"]).date()
    contract.save()
    ctx = ChecksContext()
    result = check_contract(request_in_state(S.CHECKING), ctx)
    assert result.outcome == "warn"
    assert needle in result.reason
    assert not ctx.within_contract


def test_contract_check_warns_without_a_rate_for_the_sku(catalog, contract, request_in_state):
    contract.rates.all().delete()
    result = check_contract(request_in_state(S.CHECKING), ChecksContext())
    assert result.outcome == "warn" and "no rate" in result.reason


def test_policy_check_warns_beyond_limits(catalog, request_in_state, settings):
    settings.QUOTAS_POLICY_MAX_DURATION_DAYS = 3
    settings.QUOTAS_POLICY_MIN_LEAD_HOURS = 24 * 10
    result = check_policy(request_in_state(S.CHECKING), ChecksContext())
    assert result.outcome == "warn"
    assert "longer than 3 days" in result.reason and "starts within" in result.reason


def test_standing_fails_hard_for_a_suspended_organization(catalog, org, request_in_state):
    capacity_request = request_in_state(S.CHECKING)
    assert check_standing(capacity_request, ChecksContext()).outcome == "pass"
    org.status = "suspended"
    org.save()
    result = check_standing(capacity_request, ChecksContext())
    assert (result.outcome, result.hard) == ("fail", True)


def test_each_run_records_every_check(catalog, request_in_state):
    capacity_request = request_in_state(S.SUBMITTED)
    assert capacity_request_run_checks(request_id=capacity_request.pk)
    assert not capacity_request_run_checks(request_id=capacity_request.pk)  # done already
    rows = RequestCheck.objects.for_organization(capacity_request.organization).filter(
        request=capacity_request
    )
    assert sorted(rows.values_list("name", "run")) == [
        ("capacity", 1),
        ("contract", 1),
        ("policy", 1),
        ("standing", 1),
    ]
    assert all(row.reason for row in rows)
