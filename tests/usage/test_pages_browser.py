"""The usage history page in headless Chromium on the demo data, under the real CSP: the
chart draws exactly the GPU-hours the usage selectors return and the cost ``usage_cost_lines``
prices, per day, week or month and per GPU type or region, and so does the table. The
figures are read from the Chart.js instance and compared as Decimals, never approximately."""

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from accounts.models import Organization, User
from accounts.selectors import organization_list_for_staff
from quotas.models import GpuSku, Region
from tests.quotas.test_pages_browser import Session, browser, wait_for_chart  # noqa: F401 (fixture)
from usage.costing import usage_cost_lines
from usage.fleet import next_month, usage_fleet
from usage.selectors import usage_quota_utilization, usage_series

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ZERO = Decimal("0")

# Every value as JavaScript prints it: the shortest text that reads back as the same double,
# so a figure of at most four decimals comes back digit for digit.
CHART_JS = """() => {
    const chart = Chart.getChart(document.getElementById("usage-chart"));
    return {
        labels: chart.data.labels,
        datasets: chart.data.datasets.map((d) => [d.type, d.label, d.data.map(String)]),
    };
}"""

TABLE_JS = """() => Array.from(document.querySelectorAll("#usage-table tbody tr")).map(
    (tr) => Array.from(tr.cells).map((td) => td.textContent.trim()))"""


def shot(session, name):
    """A screenshot once the charts have been laid out at the page's width (two frames)."""
    session.page.evaluate(
        "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
    )
    session.shot(name)


def decimals(values):
    return [Decimal(v.replace(",", "")) for v in values]


def selector_figures(organization, *, start, end, granularity, group_by):
    """What the page must show, from the selectors: GPU-hours per bucket and group
    (``usage_series``), cost per bucket and group (``usage_cost_lines``)."""
    hours = {
        (row.bucket, row.sku_id if group_by == "sku" else row.region_id): row.gpu_hours
        for row in usage_series(
            organization=organization,
            start=start,
            end=end,
            granularity=granularity,
            group_by=group_by,
        )
    }
    cost = defaultdict(lambda: defaultdict(lambda: ZERO))
    for line in usage_cost_lines(
        organization=organization, start=start, end=end, granularity=granularity
    ):
        group = line.sku_id if group_by == "sku" else line.region_id
        cost[(line.bucket, group)][line.currency] += line.amount
    model, field = (GpuSku, "name") if group_by == "sku" else (Region, "code")
    names = dict(model.objects.values_list("pk", field))
    buckets = sorted({bucket for bucket, _ in hours})
    groups = sorted({group for _, group in hours}, key=lambda pk: names[pk])
    currencies = sorted({c for per in cost.values() for c in per})
    assert currencies == ["USD"]  # one cost line on the chart
    chart = {
        "labels": [b.isoformat() for b in buckets],
        "datasets": [["bar", names[g], [hours.get((b, g), ZERO) for b in buckets]] for g in groups]
        + [
            [
                "line",
                "Cost (USD)",
                [sum((cost[(b, g)]["USD"] for g in groups), ZERO) for b in buckets],
            ]
        ],
    }
    table = [
        [b.isoformat(), names[g], hours[(b, g)], cost[(b, g)]["USD"]]
        for b in buckets
        for g in groups
        if (b, g) in hours
    ]
    return chart, table


def page_figures(page):
    drawn = page.evaluate(CHART_JS)
    chart = {
        "labels": drawn["labels"],
        "datasets": [[kind, label, decimals(data)] for kind, label, data in drawn["datasets"]],
    }
    table = [
        [bucket, group, *decimals([hours, cost])]
        for bucket, group, hours, cost in page.evaluate(TABLE_JS)
    ]
    return chart, table


def shown_window(page) -> tuple[date, date]:
    """The page's window as [start, end): its 'to' day is included."""
    start = date.fromisoformat(page.locator("#id_start").input_value())
    last = date.fromisoformat(page.locator("#id_end").input_value())
    return start, last + timedelta(days=1)


def check_page_matches_selectors(page, organization, *, granularity, group_by):
    wait_for_chart(page, "usage-chart")
    assert page.locator("#id_granularity").input_value() == granularity
    assert page.locator("#id_group_by").input_value() == group_by
    start, end = shown_window(page)
    expected_chart, expected_table = selector_figures(
        organization, start=start, end=end, granularity=granularity, group_by=group_by
    )
    chart, table = page_figures(page)
    assert chart == expected_chart
    assert table == expected_table
    assert len(chart["labels"]) > 1 and len(chart["datasets"]) > 2
    return expected_chart


def show(page, *, granularity, group_by, start=None):
    if start is not None:
        page.locator("#id_start").fill(start.isoformat())
    page.locator("#id_granularity").select_option(granularity)
    page.locator("#id_group_by").select_option(group_by)
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()


def test_usage_chart_shows_the_selector_figures_for_the_demo(browser, live_server):  # noqa: F811
    for seeder in settings.DEMO_SEEDERS:
        import_string(seeder)()
    acme = Organization.objects.get(slug="acme")
    owner = User.objects.get(email="owner@acme.example")

    session = Session(browser, live_server, owner)
    page = session.page
    page.goto(f"{live_server.url}/o/acme/usage/")
    # The default: twelve months by month and GPU type.
    expected = check_page_matches_selectors(page, acme, granularity="month", group_by="sku")
    assert len(expected["labels"]) == 12
    shot(session, "usage-history-month-sku")
    assert session.axe_serious() == []

    # Quota utilization: the selector's figures for the hour the page names.
    shown_hour = datetime.strptime(
        page.locator("#quota-basis strong").inner_text(), "%Y-%m-%d %H:%M UTC"
    ).replace(tzinfo=UTC)
    hour, quota = usage_quota_utilization(
        organization=acme, now=shown_hour + timedelta(hours=1, minutes=30)
    )
    assert hour == shown_hour
    quota_js = TABLE_JS.replace("#usage-table", "#quota-utilization")
    assert page.evaluate(quota_js) == [
        [
            q.sku.name,
            q.region.code,
            str(q.reserved),
            str(q.on_demand),
            str(q.quota),
            f"{q.in_use:,.4f}",
            "no quota" if q.percent is None else f"{q.percent} %",
            "no quota" if q.percent is None else f"{q.percent} %",
        ]
        for q in quota
    ]
    assert any(q.reserved for q in quota)

    # The comparison is exact: one GPU-hour in ten thousand more on one bar is a difference.
    page.evaluate(
        """() => {
            const chart = Chart.getChart(document.getElementById("usage-chart"));
            chart.data.datasets[0].data[0] += 0.0001;
            chart.update();
        }"""
    )
    assert page_figures(page)[0] != expected

    show(page, granularity="week", group_by="region")
    check_page_matches_selectors(page, acme, granularity="week", group_by="region")
    shot(session, "usage-history-week-region")

    end = shown_window(page)[1]
    show(page, granularity="day", group_by="sku", start=end - timedelta(days=45))
    expected = check_page_matches_selectors(page, acme, granularity="day", group_by="sku")
    # A bar for each day of the window: the demo meters up to the current hour, so in the first
    # hour of a UTC day the window's last day has nothing yet.
    assert len(expected["labels"]) >= 44
    show(page, granularity="day", group_by="region")
    check_page_matches_selectors(page, acme, granularity="day", group_by="region")
    show(page, granularity="month", group_by="region")
    check_page_matches_selectors(page, acme, granularity="month", group_by="region")
    shot(session, "usage-history-month-region")
    assert session.axe_serious() == []
    session.close()


FLEET_JS = """() => {
    const chart = Chart.getChart(document.getElementById("fleet-chart"));
    return {
        labels: chart.data.labels,
        datasets: chart.data.datasets.map((d) => [d.type, d.label, d.data.map(String)]),
    };
}"""


def test_fleet_usage_chart_shows_the_selector_figures_for_the_demo(browser, live_server):  # noqa: F811
    for seeder in settings.DEMO_SEEDERS:
        import_string(seeder)()
    planner = User.objects.get(email="planner@provider.example")

    session = Session(browser, live_server, planner)
    page = session.page
    page.goto(f"{live_server.url}/staff/")
    page.get_by_role("link", name="Fleet usage").click()
    page.wait_for_url("**/staff/usage/**")
    wait_for_chart(page, "fleet-chart")
    start = date.fromisoformat(page.locator("#id_start").input_value() + "-01")
    last = date.fromisoformat(page.locator("#id_end").input_value() + "-01")
    fleet = usage_fleet(
        organizations=organization_list_for_staff(user=planner), start=start, end=next_month(last)
    )
    drawn = page.evaluate(FLEET_JS)
    assert drawn["labels"] == [row.name for row in fleet.by_sku]
    assert [[kind, label, decimals(data)] for kind, label, data in drawn["datasets"]] == [
        ["bar", "GPU-hours", [row.gpu_hours for row in fleet.by_sku]],
        ["line", "Cost (USD)", [row.cost["USD"] for row in fleet.by_sku]],
    ]
    top = page.evaluate(TABLE_JS.replace("#usage-table", "#fleet-top-organizations"))
    assert [[name, *decimals([hours, cost])] for name, hours, cost in top] == [
        [row.name, row.gpu_hours, row.cost["USD"]] for row in fleet.top_organizations
    ]
    assert {row.name for row in fleet.top_organizations} == {"Acme", "Globex"}
    shot(session, "staff-fleet-usage")
    assert session.axe_serious() == []
    session.close()
