"""A suspended organization's members read everything (with a banner on the pages) and change
nothing: every non-safe request to /o/<slug>/... and /api/v1/orgs/<slug>/... answers 403 naming
the suspension, generated from the URL resolver like the cross-tenant matrix. Leaving the
organization still works; provider staff are unaffected; staff suspend and reinstate, audited."""

from __future__ import annotations

import pytest
from django.urls import Resolver404, resolve, reverse

from accounts.apikeys import api_key_create_for_organization
from accounts.models import AuditEvent, Membership, Organization
from accounts.permissions import ALLOWED_WHILE_SUSPENDED
from accounts.services import organization_status_set
from tests.conftest import enable_totp
from tests.factories import UserFactory

from .conftest import db_snapshot
from .test_url_matrix import (
    BROWSER_ORG_ROUTES,
    ORG_ROUTES,
    _declared_methods,
    _methods,
    build_path,
)

pytestmark = pytest.mark.django_db

API_ORG_ROUTES = [(route, p) for route, p in ORG_ROUTES if route.startswith("api/")]
SAFE = {"GET", "HEAD", "OPTIONS"}
# Marking one's own notifications read is no business write: it stays open while suspended.
NOTIFICATION_READ_ROUTES = {
    "api/v1/orgs/<slug:org_slug>/^notifications/read-all/$",
    "api/v1/orgs/<slug:org_slug>/^notifications/(?P<pk>[0-9]+)/read/$",
}


def _path(route: str, organization) -> str:
    """``build_path``, with a month where a route's regex wants digits (``statements/2031-01/``),
    so that every route resolves to its view rather than to a 404 for an unknown URL."""
    path = build_path(route, organization)
    try:
        resolve(path)
    except Resolver404:
        path = path.replace("/x/", "/2031-01/")
        resolve(path)
    return path


def _writes(pattern) -> list[str]:
    return sorted(_methods(pattern) - SAFE)


def _exempt(pattern, method: str) -> bool:
    return _declared_methods(pattern).get(method) in ALLOWED_WHILE_SUSPENDED


@pytest.fixture
def suspended(org, owner, member, pending_invitation, superuser_actor):
    organization_status_set(
        organization=org, status=Organization.Status.SUSPENDED, actor=superuser_actor
    )
    org.refresh_from_db()
    return org


@pytest.fixture
def superuser_actor(db):
    user = UserFactory(email="root@provider.example", is_superuser=True)
    enable_totp(user)
    return user


def test_the_resolver_has_tenant_write_routes_to_check():
    assert any(_writes(p) for _, p in BROWSER_ORG_ROUTES)
    assert any(_writes(p) for _, p in API_ORG_ROUTES)


@pytest.mark.parametrize(
    ("route", "pattern"), BROWSER_ORG_ROUTES, ids=[r for r, _ in BROWSER_ORG_ROUTES]
)
def test_every_page_write_is_refused_for_a_suspended_organization(
    client, suspended, owner, route, pattern
):
    path = _path(route, suspended)
    client.force_login(owner)
    before = db_snapshot()
    for method in _writes(pattern):
        if _exempt(pattern, method):
            continue
        response = client.generic(method, path)
        if method in _declared_methods(pattern):
            assert response.status_code == 403, f"{method} {path}: {response.status_code}"
            assert "is suspended" in response.content.decode(), f"{method} {path}"
        else:
            assert response.status_code == 405, f"{method} {path}: {response.status_code}"
    assert db_snapshot() == before


@pytest.mark.parametrize(("route", "pattern"), API_ORG_ROUTES, ids=[r for r, _ in API_ORG_ROUTES])
def test_every_api_write_is_refused_for_a_suspended_organization(
    client, suspended, owner, route, pattern
):
    path = _path(route, suspended)
    client.force_login(owner)
    before = db_snapshot()
    for method in _writes(pattern):
        if route in NOTIFICATION_READ_ROUTES:
            continue  # marking one's own notifications read stays open (tested below)
        response = client.generic(method, path, "{}", content_type="application/json")
        assert response.status_code in (403, 405), f"{method} {path}: {response.status_code}"
        if response.status_code == 403:
            problem = response.json()
            assert response["Content-Type"].startswith("application/problem+json")
            assert problem["code"] == "organization_suspended", (method, path, problem)
            assert "is suspended" in problem["detail"]
    assert db_snapshot() == before


def _accepts(pattern, method: str) -> bool:
    """Whether the route answers ``method`` at all (a viewset route lists its actions)."""
    actions = getattr(pattern.callback, "actions", None)
    return actions is None or method.lower() in actions


def test_exactly_the_notification_read_routes_are_exempt_from_the_suspension():
    exempt = {
        route
        for route, pattern in BROWSER_ORG_ROUTES + API_ORG_ROUTES
        for method in _writes(pattern)
        if _exempt(pattern, method)
        and _accepts(pattern, method)
        and _declared_methods(pattern)[method] != "org.leave"
    }
    assert exempt == NOTIFICATION_READ_ROUTES


def test_a_suspended_organization_member_marks_notifications_read(client, suspended, member):
    from notifications.models import Notification
    from notifications.services import notification_publish

    for key in ("one", "two"):
        notification_publish(
            event="request.approved",
            organization=suspended,
            recipients=[member],
            title=key,
            body="",
            url="/",
            dedupe_key=key,
        )
    unread = Notification.objects.filter(recipient=member, read_at=None)
    assert unread.count() == 2
    client.force_login(member)
    first = unread.order_by("pk").first()
    response = client.post(f"/api/v1/orgs/{suspended.slug}/notifications/{first.pk}/read/")
    assert response.status_code == 200, response.content
    response = client.post(
        f"/api/v1/orgs/{suspended.slug}/notifications/read-all/",
        {},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert not unread.exists()


def test_an_organization_api_key_cannot_write_either(client, suspended, owner):
    raw = api_key_create_for_organization(
        organization=suspended, name="CI", scopes=["read", "write"], created_by=owner
    ).key
    headers = {"Authorization": f"Bearer {raw}"}
    url = f"/api/v1/orgs/{suspended.slug}/requests/"
    response = client.post(url, {}, content_type="application/json", headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "organization_suspended"
    assert client.get(url, headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("route", "pattern"), BROWSER_ORG_ROUTES, ids=[r for r, _ in BROWSER_ORG_ROUTES]
)
def test_members_still_read_every_page_with_a_banner(client, suspended, owner, route, pattern):
    if "GET" not in _declared_methods(pattern):
        return  # a write-only route: nothing to read
    client.force_login(owner)
    response = client.get(_path(route, suspended))
    assert response.status_code not in (403, 405) and response.status_code < 500
    if response.status_code == 200 and "text/html" in response["Content-Type"]:
        body = response.content.decode()
        if "<html" in body:
            assert 'id="suspension-banner"' in body


def test_a_member_may_still_leave_a_suspended_organization(client, suspended, member):
    client.force_login(member)
    response = client.post(reverse("organization_leave", args=[suspended.slug]))
    assert response.status_code == 302
    assert not Membership.objects.for_organization(suspended).filter(user=member).exists()


def test_pages_of_an_active_organization_show_no_banner(client, org, owner):
    client.force_login(owner)
    response = client.get(reverse("member_list", args=[org.slug]))
    assert response.status_code == 200
    assert 'id="suspension-banner"' not in response.content.decode()


def test_provider_staff_are_not_refused_by_the_suspension(client, suspended, account_manager):
    client.force_login(account_manager)
    page = client.get(reverse("member_list", args=[suspended.slug]))
    assert page.status_code == 200
    response = client.post(reverse("member_list", args=[suspended.slug]))
    assert response.status_code == 403
    assert "is suspended" not in response.content.decode()  # staff are read-only there anyway


def test_staff_suspend_and_reinstate_from_the_admin_audited(client, org, owner, superuser_actor):
    client.force_login(superuser_actor)
    url = reverse("admin:accounts_organization_changelist")
    response = client.post(url, {"action": "suspend", "_selected_action": [org.pk]})
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.is_suspended
    event = AuditEvent.objects.for_organization(org).get(action="organization.suspended")
    assert event.actor == superuser_actor
    assert event.changes == {"status": ["active", "suspended"]}
    client.post(url, {"action": "reinstate", "_selected_action": [org.pk]})
    org.refresh_from_db()
    assert not org.is_suspended
    assert (
        AuditEvent.objects.for_organization(org).filter(action="organization.reinstated").exists()
    )


def test_account_managers_cannot_suspend(client, org, account_manager):
    client.force_login(account_manager)
    url = reverse("admin:accounts_organization_changelist")
    client.post(url, {"action": "suspend", "_selected_action": [org.pk]})
    org.refresh_from_db()
    assert not org.is_suspended


def test_suspending_twice_records_one_event(org, superuser_actor):
    assert organization_status_set(organization=org, status="suspended", actor=superuser_actor)
    assert not organization_status_set(organization=org, status="suspended", actor=superuser_actor)
    events = AuditEvent.objects.for_organization(org).filter(action="organization.suspended")
    assert events.count() == 1
