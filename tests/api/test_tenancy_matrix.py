"""Generated from the URL resolver: every organization route and method, every credential,
every role.

A new route under /api/v1/orgs/<slug>/ fails here until it has a sample object (``SAMPLES``)
and, for writes, a body that would succeed (``BODIES``), so "nothing changed" means something.
"""

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.apikeys import api_key_create_for_organization
from accounts.models import ApiKey, AuditEvent, Invitation, Membership, Organization, Role
from accounts.permissions import role_has
from accounts.services import invitation_create
from contracts.models import Contract
from notifications.models import Notification
from quotas.models import CapacityRequest, RequestComment, Reservation
from tests.conftest import make_member
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import webhook_endpoint_create, webhook_event_publish

from .conftest import bearer, soon
from .routes import organization_routes, staff_routes

ORG_ROUTES = organization_routes()
STAFF_ROUTES = staff_routes()
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def bodies():
    start = soon(10).isoformat()
    end = (soon(10) + timedelta(days=2)).isoformat()
    return {
        ("api-organization-detail", "PATCH"): {"name": "Taken over"},
        ("api-member-detail", "PATCH"): {"role": "admin"},
        ("api-invitation-list", "POST"): {"email": "intruder@example.com", "role": "admin"},
        ("api-api-key-list", "POST"): {"name": "stolen", "scopes": ["read", "write"]},
        ("api-request-list", "POST"): {
            "sku": "h100-sxm",
            "region": "us-east-1",
            "gpu_count": 8,
            "starts_at": start,
            "ends_at": end,
        },
        ("api-request-detail", "PATCH"): {"justification": "changed"},
        ("api-request-sign-off", "POST"): {"approve": False, "reason": "No budget"},
        ("api-request-withdraw", "POST"): {"reason": "Not needed"},
        ("api-request-comments", "POST"): {"body": "Any news?"},
        ("api-reservation-cancel", "POST"): {"reason": "Plans changed"},
        ("api-reservation-extend", "POST"): {"ends_at": (soon(30)).isoformat()},
        ("api-webhook-list", "POST"): {
            "url": "https://hooks.intruder.example/in",
            "events": ["request.approved"],
        },
        ("api-webhook-detail", "PATCH"): {"url": "https://hooks.intruder.example/in"},
    }


def queries():
    window = {
        "sku": "h100-sxm",
        "region": "us-east-1",
        "gpu_count": 8,
        "starts_at": soon(10).isoformat(),
        "ends_at": (soon(10) + timedelta(days=2)).isoformat(),
    }
    return {
        "api-availability": window,
        "api-quote": window,
        "api-quota-history": {
            "sku": "h100-sxm",
            "region": "us-east-1",
            "since": soon(-1).isoformat(),
            "until": soon(30).isoformat(),
        },
    }


def notification_of(org):
    """Notifications belong to a person: each caller's sample is one of their own, made for
    them on first use (a callable sample takes the user the URL is built for)."""

    def sample(user):
        notification, _ = Notification.objects.get_or_create(
            recipient=user,
            dedupe_key="matrix",
            defaults={"organization": org, "event": "request.approved", "title": "REQ-1"},
        )
        return notification.pk

    return sample


@pytest.fixture
def acme(org, owner, member, pending_request, reservation):
    """Acme with one object of each kind the routes name: route-name prefix -> id, or a
    function of the calling user for objects that belong to a person."""
    issued_key = api_key_create_for_organization(
        organization=org, name="existing", scopes=["read"], created_by=owner
    )
    invitation = invitation_create(
        organization=org, email="invitee@acme.example", role="member", invited_by=owner
    ).invitation
    webhook = webhook_endpoint_create(
        organization=org,
        actor=owner,
        url="https://hooks.acme.example/portal",
        events=["request.approved"],
    )
    webhook_delivery = webhook_event_publish(
        organization=org, event_type="request.approved", data={}, event_id="matrix"
    )[0]
    return {
        "api-member-": Membership.objects.for_organization(org).get(user=member).pk,
        "api-invitation-": invitation.pk,
        "api-audit-event-": AuditEvent.objects.for_organization(org).first().pk,
        "api-api-key-": issued_key.api_key.pk,
        "api-request-": pending_request.pk,
        "api-reservation-": reservation.pk,
        "api-contract-": Contract.objects.for_organization(org).get().pk,
        "api-statement-": timezone.now().strftime("%Y-%m"),  # the open month
        "api-webhook-": webhook.pk,
        "api-webhook-delivery-": webhook_delivery.pk,
        "api-notification-": notification_of(org),
    }


def url_for(route, samples, user, slug="acme"):
    kwargs = {"org_slug": slug}
    for name in route.kwargs - {"org_slug"}:
        prefixes = [p for p in samples if route.name.startswith(p)]
        assert prefixes, f"add a sample object for {route.name} ({route.route})"
        sample = samples[max(prefixes, key=len)]
        kwargs[name] = sample(user) if callable(sample) else sample
    return reverse(route.name, kwargs=kwargs)


def snapshot(org):
    """Everything a request to acme could change."""
    return (
        Organization.objects.filter(pk=org.pk).values_list("name", "time_zone", "require_mfa")[0],
        sorted(Membership.objects.for_organization(org).values_list("user_id", "role")),
        sorted(Invitation.objects.for_organization(org).values_list("id", "revoked_at")),
        sorted(ApiKey.objects.for_organization(org).values_list("id", "revoked_at")),
        sorted(CapacityRequest.objects.for_organization(org).values_list("id", "state", "version")),
        sorted(Reservation.objects.for_organization(org).values_list("id", "state", "version")),
        RequestComment.objects.for_organization(org).count(),
        sorted(
            WebhookEndpoint.objects.for_organization(org).values_list(
                "id", "url", "events", "enabled", "secret"
            )
        ),
        sorted(
            WebhookDelivery.objects.for_organization(org).values_list(
                "id", "status", "next_attempt_at"
            )
        ),
        AuditEvent.objects.for_organization(org).count(),
        sorted(Notification.objects.filter(organization=org).values_list("id", "read_at")),
    )


def call(client, method, url, route):
    if method == "GET":
        return client.get(url, queries().get(route.name, {}))
    body = bodies().get((route.name, method))
    return client.generic(method, url, **({"data": body, "format": "json"} if body else {}))


def cases(routes, methods=None):
    return [
        pytest.param(route, method, id=f"{route.name}-{method}")
        for route in routes
        for method in route.methods
        if methods is None or method in methods
    ]


def capability_of(route, method):
    """The capability the view declares for this method (or this POST action)."""
    from django.urls import resolve

    callback = resolve(reverse(route.name, kwargs=dict.fromkeys(route.kwargs, "1"))).func
    view_class = getattr(callback, "cls", None) or callback.view_class
    action = (getattr(callback, "actions", None) or {}).get(method.lower())
    if action in getattr(view_class, "action_capabilities", {}):
        return view_class.action_capabilities[action]
    return view_class.permission_map.get(method)


def test_the_matrix_covers_routes():
    names = {route.name for route in ORG_ROUTES}
    assert {"api-member-detail", "api-request-list", "api-reservation-cancel"} <= names
    assert {"api-notification-list", "api-notification-read", "api-notification-read-all"} <= names
    assert {route.name for route in STAFF_ROUTES} >= {"api-staff-request-approve"}


@contextmanager
def rolled_back():
    """Run one call inside a savepoint and undo it, so the next call sees the same state."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


@pytest.mark.parametrize(("route", "method"), cases(ORG_ROUTES))
def test_foreign_and_missing_credentials_are_refused_and_change_nothing(
    acme, org, owner, other_owner, other_org_key, approvals_key, read_key, route, method
):
    """Another organization's key or session and a provider key get 404; no credential 401;
    a read-only key cannot write (403) but reads what its user may read."""
    url = url_for(route, acme, owner)  # the user the read-only key acts for
    other_session = APIClient()
    other_session.force_login(other_owner)
    before = snapshot(org)
    for name, client, expected in [
        ("other organization's key", bearer(other_org_key.key), 404),
        ("other organization's session", other_session, 404),
        ("provider key", bearer(approvals_key.key), 404),
        ("no credential", APIClient(), 401),
        ("read-only key", bearer(read_key.key), 403 if method in WRITES else 200),
    ]:
        with rolled_back():
            response = call(client, method, url, route)
        assert response.status_code == expected, (name, response.content)
        assert response["Content-Type"] == "application/problem+json" or expected == 200
        if expected == 401:
            assert response["WWW-Authenticate"].startswith("Bearer")
        if name == "read-only key" and expected == 403:
            assert "'write' scope" in response.json()["detail"]
        assert snapshot(org) == before, name


@pytest.mark.parametrize(("route", "method"), cases(ORG_ROUTES))
def test_each_role_gets_exactly_what_the_capability_table_says(
    acme, org, owner, member, route, method
):
    """Without the capability: 403 and nothing changed. With it: let through, whatever the
    workflow then says (2xx, 400 or 409; never 401, 403 or 404)."""
    capability = capability_of(route, method)
    assert capability is not None, f"{route.name} {method} declares no capability"
    users = {Role.OWNER: owner, Role.MEMBER: member}
    for role in Role.values:
        user = users.get(role) or make_member(org, role, email=f"{role}@acme.example")
        url = url_for(route, acme, user)
        client = APIClient()
        client.force_login(user)
        before = snapshot(org)
        with rolled_back():
            response = call(client, method, url, route)
            changed = snapshot(org) != before
        if role_has(role, capability):
            assert response.status_code not in (401, 403, 404), (role, response.content)
        else:
            assert response.status_code == 403, (role, response.content)
            assert not changed, role


def staff_url(route):
    return reverse(route.name, kwargs=dict.fromkeys(route.kwargs, "1"))


@pytest.mark.parametrize(("route", "method"), cases(STAFF_ROUTES))
def test_staff_routes_refuse_tenant_users_with_404(db, owner_api, route, method):
    assert owner_api.generic(method, staff_url(route)).status_code == 404


@pytest.mark.parametrize(("route", "method"), cases(STAFF_ROUTES))
def test_staff_routes_refuse_organization_keys_with_404(db, org_key, route, method):
    assert bearer(org_key.key).generic(method, staff_url(route)).status_code == 404


@pytest.mark.parametrize(("route", "method"), cases(STAFF_ROUTES))
def test_staff_routes_refuse_provider_keys_lacking_the_scope(db, ingest_key, route, method):
    response = bearer(ingest_key.key).generic(method, staff_url(route))
    assert response.status_code == 403
    assert "'approvals' scope" in response.json()["detail"]


@pytest.mark.parametrize(("route", "method"), cases(STAFF_ROUTES))
def test_staff_routes_refuse_unauthenticated_with_401(db, route, method):
    assert APIClient().generic(method, staff_url(route)).status_code == 401
