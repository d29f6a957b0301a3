"""The contract page in headless Chromium on the demo data, under the real CSP: the burn-down
chart draws exactly the figures the selector computes, and a billing member downloads the
demo's signed document and a statement."""

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils.module_loading import import_string

from accounts.models import Organization, User
from contracts.models import Contract
from contracts.selectors.spend import contract_burn_down
from tests.quotas.test_pages_browser import Session, browser, wait_for_chart  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DEMO = [
    "accounts.demo.seed",
    "quotas.demo.seed_catalog",
    "contracts.demo.seed",
    "usage.demo.seed",
    "contracts.demo.seed_statements",
]


def chart_figures(page):
    return page.evaluate(
        """() => {
            const chart = Chart.getChart(document.getElementById("burn-down-chart"));
            return {
                labels: chart.data.labels,
                series: chart.data.datasets.map((d) => [d.label, d.data]),
            };
        }"""
    )


def as_number(value):
    return None if value is None else float(Decimal(value))


def test_burn_down_chart_shows_the_selector_figures_for_the_demo(browser, live_server):  # noqa: F811
    for seeder in DEMO:
        import_string(seeder)()
    acme = Organization.objects.get(slug="acme")
    contract = Contract.objects.for_organization(acme).get(number="ACME-MSA-001")
    owner = User.objects.get(email="owner@acme.example")

    session = Session(browser, live_server, owner)
    page = session.page
    page.goto(f"{live_server.url}/o/acme/contracts/{contract.pk}/")
    wait_for_chart(page, "burn-down-chart")
    # The forecast moves with the clock: compare with the selector at the page's instant.
    as_of = page.evaluate(
        "() => JSON.parse(document.getElementById('burn-down-data').textContent).as_of"
    )
    burn = contract_burn_down(contract=contract, now=datetime.fromisoformat(as_of))
    figures = chart_figures(page)
    assert figures["labels"] == [m.month.strftime("%Y-%m") for m in burn.months]
    assert figures["series"] == [
        ["Committed", [as_number(m.committed) for m in burn.months]],
        ["Consumed", [as_number(m.consumed) for m in burn.months]],
        ["Forecast", [as_number(m.forecast) for m in burn.months]],
    ]
    assert burn.consumed > 0
    summary = page.locator("#burn-summary").inner_text()
    assert f"{abs(burn.projected_underuse):,}" in summary
    # Two frames, so the chart has been laid out at the page's width before the screenshot.
    page.evaluate(
        "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
    )
    session.shot("contract-burn-down")
    assert session.axe_serious() == []

    with page.expect_download() as download:
        page.get_by_role("link", name="Signed master services agreement").click()
    assert Path(download.value.path()).read_bytes()[:5] == b"%PDF-"
    page.goto(f"{live_server.url}/o/acme/statements/")
    page.get_by_role("link", name="PDF").nth(1).wait_for()
    session.close()
