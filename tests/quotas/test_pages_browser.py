"""The main request journey in headless Chromium, under the real Content-Security-Policy:
a member requests capacity with live availability and price, the account manager approves,
the member sees the reservation. Screenshots land in test-artifacts/screenshots/."""

import os
import re
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.conf import settings
from django.test import Client

from quotas.models import CapacityRequest, Reservation
from quotas.tasks import run_checks_task
from tests.factories import PASSWORD

from .conftest import soon

TOTP_SECRET = "JBSWY3DPEHPK3PXP"  # the secret tests/conftest.py enable_totp() activates

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
AXE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"
LOCAL = "%Y-%m-%dT%H:%M"


@pytest.fixture(scope="module")
def browser():
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        print("chromium", chromium.version)
        yield chromium
        chromium.close()


def wait_for_chart(page, canvas_id: str) -> None:
    """Wait until Chart.js has drawn on the canvas. Safe to call while a navigation is still
    under way: the page being left may not load Chart.js at all."""
    page.wait_for_function(
        "(id) => typeof Chart !== 'undefined' && Chart.getChart(id) !== undefined", arg=canvas_id
    )


class Session:
    """A browser context signed in as one user, recording what should never happen: console
    errors (a CSP violation is one) and requests leaving the test server."""

    def __init__(self, browser, live_server, user, *, sign_in=False):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        if not sign_in:
            client = Client()
            client.force_login(user)
            self.context.add_cookies(
                [
                    {
                        "name": "sessionid",
                        "value": client.cookies["sessionid"].value,
                        "url": live_server.url,
                    }
                ]
            )
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.foreign: list[str] = []
        host = urlparse(live_server.url).netloc
        self.page.on(
            "console",
            lambda m: m.type == "error" and self.errors.append(f"{m.text} at {m.location}"),
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on(
            "response", lambda r: r.status >= 400 and self.errors.append(f"{r.status} {r.url}")
        )
        self.page.on(
            "request",
            lambda r: (
                urlparse(r.url).netloc not in (host, "")
                and not r.url.startswith("data:")
                and self.foreign.append(r.url)
            ),
        )

    def sign_in_with_totp(self, live_server, user, secret=TOTP_SECRET) -> None:
        """Sign in as staff do: e-mail and password, then the authenticator code."""
        page = self.page
        page.goto(f"{live_server.url}/accounts/login/")
        page.locator("#id_login").fill(user.email)
        page.locator("#id_password").fill(PASSWORD)
        page.locator("form button[type=submit]").first.click()
        code = page.locator("input[name=code]")
        code.wait_for()
        code.fill(format_hotp_value(hotp_value(secret, int(time.time()) // 30)))
        page.locator("form button[type=submit]").first.click()
        page.wait_for_url(re.compile(r"^(?!.*/accounts/).*$"))

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def axe_serious(self) -> list[str]:
        """axe-core's serious and critical violations on the current page (run through the
        DevTools protocol, which the page's CSP does not govern)."""
        self.page.evaluate(AXE.read_text())
        result = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        )
        return [f"{v['id']}: {v['help']}" for v in result if v["impact"] in ("serious", "critical")]

    def close(self) -> None:
        assert self.errors == [], self.errors
        assert self.foreign == [], self.foreign
        self.context.close()


def test_member_requests_capacity_and_sees_the_approved_reservation(
    browser, live_server, org, member, catalog
):
    starts_at = soon(3)
    ends_at = starts_at + timedelta(days=7)
    tz = org.tzinfo

    customer = Session(browser, live_server, member)
    page = customer.page
    page.goto(f"{live_server.url}/o/{org.slug}/requests/new/")
    assert "htmx" in page.evaluate("typeof htmx === 'object' ? 'htmx' : 'none'")
    page.get_by_label(re.compile(r"^GPU type")).select_option(label="H100 SXM 80GB")
    page.get_by_label(re.compile(r"^Region")).select_option(label="us-east-1 (New Jersey 1)")
    page.get_by_label(re.compile(r"^GPUs")).fill("16")
    page.get_by_label(re.compile(r"^Start")).fill(starts_at.astimezone(tz).strftime(LOCAL))
    page.get_by_label(re.compile(r"^End \(not included\)")).fill(
        ends_at.astimezone(tz).strftime(LOCAL)
    )
    page.get_by_label("Why you need it").fill("Fine-tuning run")
    free = page.locator('[data-figure="free-min"]')
    free.wait_for(timeout=10_000)
    assert free.inner_text() == "64"
    assert re.search(r"\d", page.locator('[data-figure="total"]').inner_text())
    assert customer.axe_serious() == []
    customer.shot("request-form")

    page.get_by_role("button", name="Review request").click()
    page.get_by_role("heading", name="Confirm your request").wait_for()
    customer.shot("request-confirm")
    page.get_by_role("button", name="Submit request").click()
    page.get_by_role("heading", name=re.compile(r"^REQ-\d+")).wait_for()
    capacity_request = CapacityRequest.objects.for_organization(org).get()
    assert capacity_request.state == "submitted"

    run_checks_task(capacity_request.pk, org.pk)  # the worker's part
    capacity_request.refresh_from_db()
    assert capacity_request.state == "pending_approval"

    manager = Session(browser, live_server, org.account_manager, sign_in=True)
    manager.sign_in_with_totp(live_server, org.account_manager)
    manager.page.goto(f"{live_server.url}/staff/approvals/")
    row = manager.page.get_by_role("row", name=re.compile(capacity_request.reference))
    assert manager.axe_serious() == []
    manager.shot("staff-approvals")
    row.get_by_role("button", name="Approve").click()
    manager.page.get_by_text(f"{capacity_request.reference} approved.").wait_for()
    manager.close()

    reservation = Reservation.objects.for_organization(org).get()
    page.goto(f"{live_server.url}/o/{org.slug}/reservations/{reservation.pk}/")
    page.get_by_role("heading", name=re.compile(reservation.reference)).wait_for()
    assert page.get_by_text("Timeline").count() == 1
    assert customer.axe_serious() == []
    customer.shot("reservation-detail")
    page.goto(f"{live_server.url}/o/{org.slug}/")
    assert reservation.reference in page.content()
    assert customer.axe_serious() == []
    customer.shot("dashboard")
    page.goto(f"{live_server.url}/notifications/")
    assert page.get_by_text(f"{capacity_request.reference} is approved").count() >= 1
    badge = page.locator(".notifications-link")
    badge.wait_for()
    customer.shot("notifications")
    customer.close()


def test_capacity_planner_sees_the_capacity_map_and_a_pool_chart(
    browser, live_server, org, catalog, capacity_planner, east_pool
):
    planner = Session(browser, live_server, capacity_planner)
    page = planner.page
    page.goto(f"{live_server.url}/staff/capacity/")
    assert planner.axe_serious() == []
    planner.shot("staff-capacity")
    page.get_by_role("link", name="64 / 64 free").click()
    page.get_by_role("heading", name=str(east_pool)).wait_for()
    wait_for_chart(page, "pool-chart")
    assert planner.axe_serious() == []
    planner.shot("staff-pool")
    planner.close()


def test_counter_offer_is_made_and_accepted(
    browser, live_server, org, member, catalog, request_in_state
):
    capacity_request = request_in_state("pending_approval", requested_by=member, gpu_count=32)
    manager = Session(browser, live_server, org.account_manager)
    manager.page.goto(f"{live_server.url}/staff/requests/{capacity_request.pk}/counter-offer")
    manager.page.get_by_label(re.compile(r"^GPUs")).fill("16")
    manager.page.get_by_label(re.compile(r"^Note to the customer")).fill("16 now, more in March.")
    manager.shot("staff-counter-offer")
    manager.page.get_by_role("button", name="Send counter-offer").click()
    manager.page.get_by_text("Counter-offer sent").wait_for()
    manager.close()

    customer = Session(browser, live_server, member)
    page = customer.page
    page.goto(f"{live_server.url}/o/{org.slug}/requests/{capacity_request.pk}/")
    page.get_by_role("region", name="Counter-offer").get_by_text(
        "16 now, more in March."
    ).wait_for()
    assert customer.axe_serious() == []
    customer.shot("request-counter-offered")
    page.get_by_role("link", name="Accept offer").click()
    page.get_by_role("button", name="Accept offer").click()
    page.get_by_text("Accept offer: done.").wait_for()
    customer.close()
    capacity_request.refresh_from_db()
    assert capacity_request.state == "approved"
    assert Reservation.objects.for_organization(org).get().gpu_count == 16


def _wait_for_state(capacity_request, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        capacity_request.refresh_from_db()
        if capacity_request.state == state or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert capacity_request.state == state


def test_request_above_the_threshold_is_approved_by_the_manager_then_a_planner(
    browser, live_server, settings, org, member, catalog, capacity_planner, request_in_state
):
    settings.QUOTAS_SECOND_APPROVAL_GPUS = 8
    capacity_request = request_in_state("pending_approval", requested_by=member, gpu_count=16)

    manager = Session(browser, live_server, org.account_manager, sign_in=True)
    manager.sign_in_with_totp(live_server, org.account_manager)
    manager.page.goto(f"{live_server.url}/staff/approvals/")
    row = manager.page.get_by_role("row", name=re.compile(capacity_request.reference))
    row.get_by_role("button", name="Approve").click()
    _wait_for_state(capacity_request, "pending_second_approval")
    assert not Reservation.objects.for_organization(org).exists()
    manager.close()

    planner = Session(browser, live_server, capacity_planner, sign_in=True)
    planner.sign_in_with_totp(live_server, capacity_planner)
    planner.page.goto(f"{live_server.url}/staff/approvals/second/")
    row = planner.page.get_by_role("row", name=re.compile(capacity_request.reference))
    assert planner.axe_serious() == []
    planner.shot("staff-second-approvals")
    row.get_by_role("button", name="Approve").click()
    _wait_for_state(capacity_request, "approved")
    planner.close()

    reservation = Reservation.objects.for_organization(org).get()
    assert reservation.gpu_count == 16
    customer = Session(browser, live_server, member)
    page = customer.page
    page.goto(f"{live_server.url}/o/{org.slug}/requests/{capacity_request.pk}/")
    page.get_by_role("heading", name=re.compile(capacity_request.reference)).wait_for()
    timeline = page.content()
    assert "Awaiting second approval" in timeline or "second approval" in timeline.lower()
    assert customer.axe_serious() == []
    customer.shot("request-two-stage-approved")
    customer.close()
