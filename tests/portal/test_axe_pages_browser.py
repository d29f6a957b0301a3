"""axe-core on every page of the product, in headless Chromium under the real CSP, at laptop
(1366x768) and tablet (768x1024) widths, on the demo data: zero serious or critical
violations, a screenshot of each page at each width in test-artifacts/screenshots/axe/, no
console error and no request leaving the test server.

The pages come from the URL resolver: every route outside the API, the admin and allauth is
either visited here (by the role that works on it) or listed in NOT_PAGES with the reason, so a
new page fails ``test_every_route_is_visited_or_excused`` until it is added.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.apikeys import api_key_create_for_organization
from accounts.models import Membership, Organization, Role, User
from accounts.services import invitation_create
from contracts.models import Contract, Statement
from quotas.models import CapacityPool, CapacityRequest, Reservation
from quotas.workflow import REQUEST_ACTIONS, RESERVATION_ACTIONS
from tests.quotas.test_pages_browser import ARTIFACTS, AXE, Session, browser  # noqa: F401
from webhooks.services import webhook_endpoint_create

VIEWPORTS = {"laptop": {"width": 1366, "height": 768}, "tablet": {"width": 768, "height": 1024}}
TENANT, MANAGER, PLANNER, ANONYMOUS = "owner", "account-manager", "capacity-planner", "anonymous"
USERS = {
    TENANT: "owner@acme.example",
    MANAGER: "manager@provider.example",
    PLANNER: "planner@provider.example",
}

# url name -> who visits it (a tenant owner of Acme, Acme's account manager, a capacity planner,
# or nobody signed in). Staff also see a tenant page in their read-only staff view.
PAGES: list[tuple[str, str]] = [
    ("org_dashboard", TENANT),
    ("request_list", TENANT),
    ("request_create", TENANT),
    ("request_detail", TENANT),
    ("request_edit", TENANT),
    ("request_action", TENANT),
    ("approval_policy", TENANT),
    ("reservation_list", TENANT),
    ("reservation_detail", TENANT),
    ("reservation_extend", TENANT),
    ("reservation_action", TENANT),
    ("usage_history", TENANT),
    ("contract_list", TENANT),
    ("contract_detail", TENANT),
    ("statement_list", TENANT),
    ("statement_detail", TENANT),
    ("member_list", TENANT),
    ("member_remove", TENANT),
    ("invitation_revoke", TENANT),
    ("organization_leave", TENANT),
    ("organization_settings", TENANT),
    ("api_key_list", TENANT),
    ("api_key_revoke", TENANT),
    ("webhook_list", TENANT),
    ("webhook_detail", TENANT),
    ("webhook_rotate_secret", TENANT),
    ("webhook_delete", TENANT),
    ("audit_log", TENANT),
    ("org_notification_list", TENANT),
    ("notification_list", TENANT),
    ("notification_preferences", TENANT),
    ("mfa_index", TENANT),
    ("mfa_activate_totp", TENANT),
    ("account_email", TENANT),
    ("account_change_password", TENANT),
    ("staff_home", MANAGER),
    ("staff_organizations", MANAGER),
    ("staff_approvals", MANAGER),
    ("staff_request_detail", MANAGER),
    ("staff_reject", MANAGER),
    ("staff_counter_offer", MANAGER),
    ("staff_usage", MANAGER),
    ("org_dashboard", MANAGER),
    ("contract_detail", MANAGER),
    ("staff_second_approvals", PLANNER),
    ("staff_capacity", PLANNER),
    ("staff_pool", PLANNER),
    ("staff_usage", PLANNER),
    ("staff_organizations", PLANNER),
    ("account_login", ANONYMOUS),
    ("account_signup", ANONYMOUS),
    ("account_reset_password", ANONYMOUS),
    ("invitation_accept", ANONYMOUS),
]

NOT_PAGES = {
    "home": "redirects to the user's organization or to /staff/",
    "healthz": "health check for load balancers, JSON",
    "invitation_resume": "redirects back to the invitation after sign-in",
    "member_role": "POST only, from the members page",
    "request_comment": "POST only, from the request page",
    "request_availability": "htmx fragment inside the request form",
    "contract_document": "file download",
    "statement_csv": "file download",
    "statement_pdf": "file download",
    "webhook_enable": "POST only, from the webhook page",
    "webhook_redeliver": "POST only, from the webhook page",
    "staff_bulk_approve": "POST only, from the queues",
    "staff_approve": "POST only, from the queues and the request page",
    "staff_request_comment": "POST only, from the request page",
    "notification_badge": "htmx fragment inside the header",
    "notification_read_all": "POST only, from the notifications page",
    "notification_read": "POST only, from the notifications page",
}
SKIPPED_PREFIXES = ("api/", "admin/", "accounts/", "static/", "media/", "__")


def _routes(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def _axe_serious(page) -> list[str]:
    """Like ``Session.axe_serious``, loading axe-core once per page rather than once per run."""
    if not page.evaluate("() => typeof axe === 'object'"):
        page.evaluate(AXE.read_text())
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['id']}: {v['help']} ({', '.join(n['target'][0] for n in v['nodes'][:3])})"
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


def test_every_route_is_visited_or_excused():
    names = {
        pattern.name
        for route, pattern in _routes(get_resolver().url_patterns)
        if not route.startswith(SKIPPED_PREFIXES)
    }
    visited = {name for name, _ in PAGES}
    assert names - visited - set(NOT_PAGES) == set(), "add new pages to PAGES (or NOT_PAGES)"
    assert set(NOT_PAGES) & visited == set()
    assert set(NOT_PAGES) <= names, "NOT_PAGES names a route that no longer exists"


def _first(queryset, what: str):
    obj = queryset.order_by("pk").first()
    assert obj is not None, f"the demo data has no {what}"
    return obj


def _paths(acme: Organization) -> dict[str, Callable[[], str]]:
    """How to reach each page on the demo data (plus a few objects the demo lacks)."""
    owner = User.objects.get(email=USERS[TENANT])
    slug = {"org_slug": acme.slug}
    requests_ = CapacityRequest.objects.for_organization(acme)
    reservations = Reservation.objects.for_organization(acme)
    pending = _first(requests_.filter(state="pending_approval"), "pending request")
    draft = requests_.filter(state="draft").first() or _first(requests_, "request")
    undecided = _first(requests_.filter(state__in=REQUEST_ACTIONS["withdraw"]), "open request")
    active = _first(reservations.filter(state="active"), "active reservation")
    scheduled = _first(reservations.filter(state__in=RESERVATION_ACTIONS["cancel"]), "scheduled")
    contract = _first(Contract.objects.for_organization(acme), "contract")
    statement = _first(Statement.objects.for_organization(acme).order_by("-month"), "statement")
    member = _first(
        Membership.objects.for_organization(acme).exclude(role=Role.OWNER), "non-owner member"
    )
    invitation = invitation_create(
        organization=acme, email="new.hire@acme.example", role=Role.MEMBER, invited_by=owner
    )
    api_key = api_key_create_for_organization(
        organization=acme, name="CI pipeline", scopes=["read"], created_by=owner
    ).api_key
    endpoint = webhook_endpoint_create(
        organization=acme,
        actor=owner,
        url="https://hooks.acme.example/portal",
        events=["request.approved", "reservation.active"],
        description="Capacity bot",
    )
    pool = _first(CapacityPool.objects.all(), "capacity pool")

    def url(name: str, **kwargs) -> Callable[[], str]:
        return lambda: reverse(name, kwargs=kwargs or None)

    return {
        "org_dashboard": url("org_dashboard", **slug),
        "request_list": url("request_list", **slug),
        "request_create": url("request_create", **slug),
        "request_detail": url("request_detail", **slug, pk=pending.pk),
        "request_edit": url("request_edit", **slug, pk=draft.pk),
        "request_action": url("request_action", **slug, pk=undecided.pk, action="withdraw"),
        "approval_policy": url("approval_policy", **slug),
        "reservation_list": url("reservation_list", **slug),
        "reservation_detail": url("reservation_detail", **slug, pk=active.pk),
        "reservation_extend": url("reservation_extend", **slug, pk=active.pk),
        "reservation_action": url("reservation_action", **slug, pk=scheduled.pk, action="cancel"),
        "usage_history": url("usage_history", **slug),
        "contract_list": url("contract_list", **slug),
        "contract_detail": url("contract_detail", **slug, pk=contract.pk),
        "statement_list": url("statement_list", **slug),
        "statement_detail": url(
            "statement_detail", **slug, month=statement.month.strftime("%Y-%m")
        ),
        "member_list": url("member_list", **slug),
        "member_remove": url("member_remove", **slug, membership_id=member.pk),
        "invitation_revoke": url(
            "invitation_revoke", **slug, invitation_id=invitation.invitation.pk
        ),
        "organization_leave": url("organization_leave", **slug),
        "organization_settings": url("organization_settings", **slug),
        "api_key_list": url("api_key_list", **slug),
        "api_key_revoke": url("api_key_revoke", **slug, api_key_id=api_key.pk),
        "webhook_list": url("webhook_list", **slug),
        "webhook_detail": url("webhook_detail", **slug, endpoint_id=endpoint.pk),
        "webhook_rotate_secret": url("webhook_rotate_secret", **slug, endpoint_id=endpoint.pk),
        "webhook_delete": url("webhook_delete", **slug, endpoint_id=endpoint.pk),
        "audit_log": url("audit_log", **slug),
        "org_notification_list": url("org_notification_list", **slug),
        "notification_list": url("notification_list"),
        "notification_preferences": url("notification_preferences"),
        "mfa_index": url("mfa_index"),
        "mfa_activate_totp": url("mfa_activate_totp"),
        "account_email": url("account_email"),
        "account_change_password": url("account_change_password"),
        "staff_home": url("staff_home"),
        "staff_organizations": url("staff_organizations"),
        "staff_approvals": url("staff_approvals"),
        "staff_request_detail": url("staff_request_detail", pk=pending.pk),
        "staff_reject": url("staff_reject", pk=pending.pk),
        "staff_counter_offer": url("staff_counter_offer", pk=pending.pk),
        "staff_usage": url("staff_usage"),
        "staff_second_approvals": url("staff_second_approvals"),
        "staff_capacity": url("staff_capacity"),
        "staff_pool": url("staff_pool", pk=pool.pk),
        "account_login": url("account_login"),
        "account_signup": url("account_signup"),
        "account_reset_password": url("account_reset_password"),
        "invitation_accept": lambda: invitation.path,
    }


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_every_page_has_no_serious_axe_violation_at_laptop_and_tablet_width(
    browser,  # noqa: F811
    live_server,
):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    acme = Organization.objects.get(slug="acme")
    paths = _paths(acme)
    (ARTIFACTS / "axe").mkdir(parents=True, exist_ok=True)
    violations: dict[str, list[str]] = {}
    wrong_status: dict[str, str] = {}
    for role in (TENANT, MANAGER, PLANNER, ANONYMOUS):
        user = User.objects.get(email=USERS[role]) if role in USERS else None
        session = Session(browser, live_server, user, sign_in=user is None)
        page = session.page
        for name, who in PAGES:
            if who != role:
                continue
            path = paths[name]()
            response = page.goto(f"{live_server.url}{path}")
            if response.status != 200 or ("/accounts/login/" in page.url and user is not None):
                wrong_status[f"{role} {name}"] = f"{response.status} {page.url}"
                continue
            for width, viewport in VIEWPORTS.items():
                page.set_viewport_size(viewport)
                found = _axe_serious(page)
                if found:
                    violations[f"{role} {name} {width}"] = found
                page.screenshot(
                    path=str(ARTIFACTS / "axe" / f"{role}-{name}-{width}.png"), full_page=True
                )
        session.close()
    assert wrong_status == {}
    assert violations == {}
