from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.errors import DomainError
from quotas.pricing import Quote, gpu_hours_exact, quote_price, round_money
from tests.factories import (
    ContractFactory,
    ContractRateFactory,
    GpuSkuFactory,
    RegionFactory,
)

START = datetime(2031, 3, 2, 12, tzinfo=UTC)


@pytest.fixture
def sku(db):
    return GpuSkuFactory(code="h100-sxm", name="H100 SXM 80GB", list_price_per_gpu_hour="2.9900")


@pytest.fixture
def region(db):
    return RegionFactory(code="us-east-1")


def quote(org, sku, region, count=8, hours=24, start=START):
    return quote_price(
        organization=org,
        sku=sku,
        region=region,
        gpu_count=count,
        starts_at=start,
        ends_at=start + timedelta(hours=hours),
    )


def test_list_price_in_usd_without_a_contract(org, sku, region):
    q = quote(org, sku, region, count=16, hours=72)
    assert q.source == Quote.SOURCE_LIST
    assert (q.currency, q.rate_per_gpu_hour) == ("USD", Decimal("2.9900"))
    assert q.contract_id is None
    assert q.gpu_hours == Decimal("1152")
    assert q.total == Decimal("3444.48")


def test_contract_rate_in_the_contract_currency(org, sku, region):
    contract = ContractFactory(organization=org, currency="EUR", number="ACME-2031")
    ContractRateFactory(contract=contract, sku=sku, region=None, price_per_gpu_hour="2.1000")
    q = quote(org, sku, region, count=8, hours=10)
    assert (q.source, q.currency, q.rate_per_gpu_hour) == ("contract", "EUR", Decimal("2.1000"))
    assert (q.contract_id, q.contract_number) == (contract.pk, "ACME-2031")
    assert q.total == Decimal("168.00")
    assert q.list_price_per_gpu_hour == Decimal("2.9900")


def test_a_region_rate_wins_over_an_any_region_rate(org, sku, region):
    contract = ContractFactory(organization=org)
    ContractRateFactory(contract=contract, sku=sku, region=None, price_per_gpu_hour="2.1000")
    ContractRateFactory(contract=contract, sku=sku, region=region, price_per_gpu_hour="1.9500")
    elsewhere = RegionFactory(code="us-west-1")
    assert quote(org, sku, region).rate_per_gpu_hour == Decimal("1.9500")
    assert quote(org, sku, elsewhere).rate_per_gpu_hour == Decimal("2.1000")


def test_list_price_when_the_contract_does_not_cover_the_window_or_sku(org, other_org, sku, region):
    contract = ContractFactory(
        organization=org, term_start=date(2031, 1, 1), term_end=date(2031, 4, 1)
    )
    ContractRateFactory(contract=contract, sku=sku, price_per_gpu_hour="2.1000")
    assert quote(org, sku, region).source == "contract"
    # Ends on the term's last instant: covered. One hour later: not.
    end_of_term = datetime(2031, 4, 1, tzinfo=UTC)
    assert quote(org, sku, region, start=end_of_term - timedelta(hours=24)).source == "contract"
    assert quote(org, sku, region, start=end_of_term - timedelta(hours=23)).source == "list"
    # Starts before the term.
    assert quote(org, sku, region, start=datetime(2030, 12, 31, tzinfo=UTC)).source == "list"
    # Another SKU the contract does not price.
    assert quote(org, GpuSkuFactory(code="l40s"), region).source == "list"
    # Another organization's contract never applies.
    assert quote(other_org, sku, region).source == "list"


@pytest.mark.parametrize("status", ["draft", "expired", "terminated"])
def test_only_an_active_contract_prices(org, sku, region, status):
    contract = ContractFactory(organization=org, status=status)
    ContractRateFactory(contract=contract, sku=sku, price_per_gpu_hour="1.0000")
    assert quote(org, sku, region).source == "list"


def test_total_is_rounded_half_up_once_at_the_end(org, region):
    # 1 GPU x 30 minutes x 0.0100 = 0.005 exactly -> 0.01 (half-up), not 0.00 (half-even).
    cheap = GpuSkuFactory(code="a40", list_price_per_gpu_hour="0.0100")
    q = quote_price(
        organization=org,
        sku=cheap,
        region=region,
        gpu_count=1,
        starts_at=START,
        ends_at=START + timedelta(minutes=30),
    )
    assert q.gpu_hours == Decimal("0.5")
    assert q.total == Decimal("0.01")


def test_total_uses_the_exact_gpu_hours_not_the_displayed_ones(org, region):
    # 20 minutes = 1/3 GPU-hour, shown as 0.333333. Exact: 1/3 x 0.045 = 0.015 -> 0.02.
    # Rounding the GPU-hours first would give 0.333333 x 0.045 = 0.014999985 -> 0.01.
    sku = GpuSkuFactory(code="rtx-a6000", list_price_per_gpu_hour="0.0450")
    q = quote_price(
        organization=org,
        sku=sku,
        region=region,
        gpu_count=1,
        starts_at=START,
        ends_at=START + timedelta(minutes=20),
    )
    assert q.gpu_hours == Decimal("0.333333")
    assert q.total == Decimal("0.02")


@given(
    cents=st.integers(0, 10**9),
    denominator=st.integers(1, 10**6),
)
def test_round_money_is_half_up_on_the_exact_amount(cents, denominator):
    amount = Fraction(cents, 100 * denominator)
    rounded = round_money(amount)
    assert rounded == rounded.quantize(Decimal("0.01"))
    error = Fraction(rounded) - amount
    assert -Fraction(1, 200) < error <= Fraction(1, 200)


def test_gpu_hours_are_exact_to_the_microsecond():
    start = START
    assert gpu_hours_exact(
        gpu_count=3, starts_at=start, ends_at=start + timedelta(seconds=1)
    ) == Fraction(3, 3600)
    assert gpu_hours_exact(
        gpu_count=1, starts_at=start, ends_at=start + timedelta(days=2, microseconds=36)
    ) == Fraction(48) + Fraction(36, 3600 * 10**6)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"count": 0}, "gpu_count"), ({"hours": 0}, "ends_at"), ({"hours": -1}, "ends_at")],
)
def test_bad_input_names_the_field(org, sku, region, kwargs, field):
    with pytest.raises(DomainError) as error:
        quote(org, sku, region, **kwargs)
    assert error.value.field == field


def test_quote_as_dict_keeps_decimals_as_strings(org, sku, region):
    data = quote(org, sku, region, count=8, hours=1).as_dict()
    assert data["total"] == "23.92"
    assert data["rate_per_gpu_hour"] == "2.9900"
    assert data["source"] == "list"
