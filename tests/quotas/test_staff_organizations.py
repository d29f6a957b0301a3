"""/staff/organizations/: the organizations a staff member looks after, a page at a time, with
their contract, this month's usage cost, open requests and approval policy."""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Organization, User
from contracts.selectors import contract_active_for
from contracts.selectors.spend import contract_consumed_spend_many
from quotas.selectors.pages import staff_contract_consumed, staff_organization_usage_cost
from usage.costing import usage_cost_lines, usage_cost_total
from usage.fleet import usage_cost_by_organization

from ..factories import ContractFactory, ContractRateFactory, OrganizationFactory
from ..usage.conftest import JAN, hours, ingest, record

pytestmark = pytest.mark.django_db

URL = "/staff/organizations/"


def _this_month() -> tuple[date, date]:
    month = timezone.now().astimezone(UTC).date().replace(day=1)
    return month, (month + timedelta(days=32)).replace(day=1)


def _table(response) -> str:
    """The page's main part (the navigation lists organizations too)."""
    html = response.content.decode()
    return html[html.index("<main") : html.index("</main>")]


def _consumed(html: str, slug: str) -> Decimal | None:
    row = re.search(rf'href="/o/{slug}/".*?</tr>', html, re.S)
    assert row, slug
    found = re.search(r'data-consumed="([^"]+)"', row.group(0))
    return Decimal(found.group(1)) if found else None


def _month_cost(html: str, slug: str) -> str:
    row = re.search(rf'href="/o/{slug}/".*?data-month-cost="([^"]+)"', html, re.S)
    assert row, slug
    return row.group(1)


@pytest.fixture
def priced(org, other_org, h100, east):
    """acme: a EUR contract with an H100 rate and usage this month (some inside no
    reservation); globex: list prices."""
    h100.list_price_per_gpu_hour = Decimal("3.0000")
    h100.save()
    month, _ = _this_month()
    contract = ContractFactory(
        organization=org,
        number="ACME-9",
        currency="EUR",
        term_start=month - timedelta(days=40),
        term_end=month + timedelta(days=400),
        committed_spend=Decimal("500000.00"),
    )
    ContractRateFactory(contract=contract, sku=h100, price_per_gpu_hour=Decimal("1.9333"))
    start = datetime.combine(month, datetime.min.time(), tzinfo=UTC)
    ingest(
        [record(hour=h, gpu_hours="2.0001") for h in hours(start, 5)]
        + [record(org="globex", hour=h, gpu_hours="1.5") for h in hours(start, 3)]
    )
    return contract


def test_usage_cost_equals_the_statement_pricing_with_a_contract_starting_mid_month(
    org, other_org, h100, east
):
    h100.list_price_per_gpu_hour = Decimal("3.0000")
    h100.save()
    contract = ContractFactory(
        organization=org, term_start=date(2026, 1, 15), term_end=date(2027, 1, 1)
    )
    ContractRateFactory(contract=contract, sku=h100, price_per_gpu_hour=Decimal("1.9333"))
    ingest(
        [record(hour=h, gpu_hours="1.5") for h in hours(JAN.replace(day=10), 10)]
        + [record(hour=h, gpu_hours="2.0001") for h in hours(JAN.replace(day=20), 5)]
        + [record(org="globex", hour=h, gpu_hours="3") for h in hours(JAN.replace(day=10), 4)]
    )
    cost = staff_organization_usage_cost(
        organization_ids=[org.pk, other_org.pk], start=date(2026, 1, 1), end=date(2026, 2, 1)
    )
    for organization in (org, other_org):
        expected = usage_cost_total(
            usage_cost_lines(
                organization=organization, start=date(2026, 1, 1), end=date(2026, 2, 1)
            )
        )
        assert cost[organization.pk] == expected
    # 15 h at list 3.00 + 10.0005 h at 1.9333 (19.33 rounded once); globex 12 h at 3.00
    assert cost[org.pk] == {"USD": Decimal("64.33")}
    assert cost[other_org.pk] == {"USD": Decimal("36.00")}


def test_page_shows_this_months_cost_as_the_statement_pricing_gives_it(
    client, priced, org, other_org, account_manager, capacity_planner
):
    month, next_month = _this_month()
    client.force_login(capacity_planner)
    html = _table(client.get(URL))
    acme = usage_cost_total(usage_cost_lines(organization=org, start=month, end=next_month))
    globex = usage_cost_total(usage_cost_lines(organization=other_org, start=month, end=next_month))
    assert acme == {"EUR": Decimal("19.33")}
    assert _month_cost(html, "acme") == str(acme["EUR"])
    assert _month_cost(html, "globex") == str(globex["USD"]) == "13.50"
    assert "ACME-9" in html and "500,000.00 EUR committed" in html
    assert "manager@provider.example" in html or account_manager.display_name in html


def test_page_month_cost_is_the_shared_cost_lines_summed(
    client, priced, org, other_org, capacity_planner
):
    month, next_month = _this_month()
    client.force_login(capacity_planner)
    html = _table(client.get(URL))
    lines = usage_cost_by_organization(
        organizations=[org.pk, other_org.pk], start=month, end=next_month
    ).lines
    for organization, currency in ((org, "EUR"), (other_org, "USD")):
        mine = [line for line in lines if line.organization_id == organization.pk]
        assert mine
        assert _month_cost(html, organization.slug) == str(usage_cost_total(mine)[currency])


def test_an_account_manager_sees_only_their_organizations(client, org, other_org, account_manager):
    client.force_login(account_manager)
    response = client.get(URL)
    assert response.status_code == 200
    html = _table(response)
    assert 'href="/o/acme/"' in html
    assert "Globex" not in html
    assert '<th scope="col">Account manager</th>' not in html


def test_a_tenant_user_gets_404(client, org, owner):
    client.force_login(owner)
    assert client.get(URL).status_code == 404


def test_search_status_and_awaiting_filters(
    client, org, other_org, capacity_planner, catalog, request_in_state
):
    request_in_state("pending_approval")
    other_org.status = "suspended"
    other_org.save()
    client.force_login(capacity_planner)
    assert "Globex" not in _table(client.get(URL, {"q": "acm"}))
    assert "Acme" in _table(client.get(URL, {"q": "ACME"}))
    suspended = _table(client.get(URL, {"status": "suspended"}))
    assert "Globex" in suspended and 'href="/o/acme/"' not in suspended
    assert "Suspended</span>" in suspended
    awaiting = _table(client.get(URL, {"awaiting": "1"}))
    assert 'href="/o/acme/"' in awaiting and "Globex" not in awaiting
    empty = _table(client.get(URL, {"q": "nothing-like-this"}))
    assert "No organization matches these filters" in empty


def test_pages_of_25_in_name_order(client, capacity_planner):
    for i in range(30):
        OrganizationFactory(name=f"Org {i:02d}", slug=f"org-{i:02d}")
    client.force_login(capacity_planner)
    first = _table(client.get(URL))
    assert "Org 00" in first and "Org 24" in first and "Org 25" not in first
    assert "Page 1 of 2" in first
    second = _table(client.get(URL, {"page": 2}))
    assert "Org 25" in second and "Org 29" in second and "Org 24" not in second


def test_query_count_is_flat_as_organizations_and_usage_grow(
    client, priced, org, h100, east, capacity_planner, django_assert_num_queries
):
    month, _ = _this_month()
    start = datetime.combine(month, datetime.min.time(), tzinfo=UTC)
    client.force_login(capacity_planner)
    client.get(URL)  # warm the session and caches
    for i in range(1):
        OrganizationFactory(name=f"Few {i}", slug=f"few-{i}")
    with django_assert_num_queries(18):
        assert client.get(URL).status_code == 200
    for i in range(27):
        extra = OrganizationFactory(name=f"Many {i:02d}", slug=f"many-{i:02d}")
        ContractFactory(organization=extra, term_start=month, term_end=month + timedelta(400))
    ingest(
        [
            record(org=f"many-{i:02d}", hour=h, gpu_hours="1")
            for i in range(27)
            for h in hours(start, 2)
        ]
    )
    with django_assert_num_queries(18):
        html = _table(client.get(URL))
    assert "Page 1 of 2" in html


@pytest.mark.django_db(transaction=True)
def test_demo_figures_equal_the_statement_and_burn_down_selectors(client):
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    month, next_month = _this_month()
    client.force_login(User.objects.get(email="planner@provider.example"))
    before = timezone.now()
    response = client.get(URL)
    assert response.status_code == 200, response
    html = _table(response)
    after = timezone.now()
    checked = 0
    for org in Organization.objects.order_by("name", "pk")[:25]:
        contract = contract_active_for(organization=org, at=before)
        currency = contract.currency if contract else "USD"
        month_cost = usage_cost_total(
            usage_cost_lines(organization=org, start=month, end=next_month)
        )
        assert Decimal(_month_cost(html, org.slug)) == month_cost.get(currency, Decimal("0.00"))
        shown = _consumed(html, org.slug)
        if contract is None:
            assert shown is None
            continue
        # Exactly the burn-down's figure at the same instant...
        for at in (before, after):
            assert staff_contract_consumed(contract_ids=[contract.pk], now=at) == (
                contract_consumed_spend_many(organization=org, contracts=[contract], now=at)
            )
        # ...and the page's (its own instant lies between the two; reservations accrue).
        low = contract_consumed_spend_many(organization=org, contracts=[contract], now=before)
        high = contract_consumed_spend_many(organization=org, contracts=[contract], now=after)
        assert low[contract.pk] <= shown <= high[contract.pk]
        checked += 1
    assert checked >= 2
