"""Generated from the URL resolver: every organization route and method, every credential.

A new route under /api/v1/orgs/<slug>/ fails here until it has a sample object and a body.
"""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.apikeys import api_key_create_for_organization
from accounts.models import ApiKey, AuditEvent, Invitation, Membership, Organization
from accounts.services import invitation_create

from .conftest import bearer
from .routes import organization_routes, staff_routes

ORG_ROUTES = organization_routes()
STAFF_ROUTES = staff_routes()

# A body that would succeed if access control let it through, so "nothing changed" means it.
BODIES = {
    ("api-organization-detail", "PATCH"): {"name": "Taken over"},
    ("api-member-detail", "PATCH"): {"role": "admin"},
    ("api-invitation-list", "POST"): {"email": "intruder@example.com", "role": "admin"},
    ("api-api-key-list", "POST"): {"name": "stolen", "scopes": ["read", "write"]},
}


@pytest.fixture
def acme(org, owner, member):
    """Acme with one object of each kind the routes name."""
    issued_key = api_key_create_for_organization(
        organization=org, name="existing", scopes=["read"], created_by=owner
    )
    invitation = invitation_create(
        organization=org, email="invitee@acme.example", role="member", invited_by=owner
    ).invitation
    return {
        "api-member-detail": Membership.objects.for_organization(org).get(user=member).pk,
        "api-invitation-detail": invitation.pk,
        "api-audit-event-detail": AuditEvent.objects.for_organization(org).first().pk,
        "api-api-key-detail": issued_key.api_key.pk,
    }


def url_for(route, samples, slug="acme"):
    kwargs = {"org_slug": slug}
    for name in route.kwargs - {"org_slug"}:
        assert route.name in samples, f"add a sample object for {route.name} ({route.route})"
        kwargs[name] = samples[route.name]
    return reverse(route.name, kwargs=kwargs)


def snapshot(org):
    """Everything a request to acme could change."""
    return (
        Organization.objects.filter(pk=org.pk).values_list("name", "time_zone", "require_mfa")[0],
        sorted(Membership.objects.for_organization(org).values_list("user_id", "role")),
        sorted(Invitation.objects.for_organization(org).values_list("id", "revoked_at")),
        sorted(ApiKey.objects.for_organization(org).values_list("id", "revoked_at")),
        AuditEvent.objects.for_organization(org).count(),
    )


def call(client, method, url, route):
    body = BODIES.get((route.name, method))
    return client.generic(method, url, **({"data": body, "format": "json"} if body else {}))


def cases(routes, methods=None):
    return [
        pytest.param(route, method, id=f"{route.name}-{method}")
        for route in routes
        for method in route.methods
        if methods is None or method in methods
    ]


def test_the_matrix_covers_routes():
    assert len(ORG_ROUTES) >= 8
    assert len(STAFF_ROUTES) >= 2


@pytest.mark.parametrize(("route", "method"), cases(ORG_ROUTES))
def test_other_organizations_key_gets_404_and_changes_nothing(
    acme, org, other_org_key, route, method
):
    before = snapshot(org)
    response = call(bearer(other_org_key.key), method, url_for(route, acme), route)
    assert response.status_code == 404, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert snapshot(org) == before


@pytest.mark.parametrize(("route", "method"), cases(ORG_ROUTES))
def test_other_organizations_session_gets_404_and_changes_nothing(
    acme, org, other_owner, route, method
):
    client = APIClient()
    client.force_login(other_owner)
    before = snapshot(org)
    response = call(client, method, url_for(route, acme), route)
    assert response.status_code == 404, response.content
    assert snapshot(org) == before


@pytest.mark.parametrize(("route", "method"), cases(ORG_ROUTES))
def test_provider_key_gets_404_on_organization_routes(acme, org, approvals_key, route, method):
    before = snapshot(org)
    response = call(bearer(approvals_key.key), method, url_for(route, acme), route)
    assert response.status_code == 404, response.content
    assert snapshot(org) == before


@pytest.mark.parametrize(("route", "method"), cases(ORG_ROUTES))
def test_unauthenticated_gets_401(acme, org, route, method):
    before = snapshot(org)
    response = call(APIClient(), method, url_for(route, acme), route)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert snapshot(org) == before


@pytest.mark.parametrize(
    ("route", "method"), cases(ORG_ROUTES, methods={"POST", "PUT", "PATCH", "DELETE"})
)
def test_read_only_key_cannot_write(acme, org, read_key, route, method):
    before = snapshot(org)
    response = call(bearer(read_key.key), method, url_for(route, acme), route)
    assert response.status_code == 403, response.content
    assert "'write' scope" in response.json()["detail"]
    assert snapshot(org) == before


@pytest.mark.parametrize(("route", "method"), cases(ORG_ROUTES, methods={"GET"}))
def test_read_only_key_reads_what_its_user_may_read(acme, read_key, route, method):
    response = bearer(read_key.key).get(url_for(route, acme))
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("route", "method"), cases(ORG_ROUTES, methods={"POST", "PUT", "PATCH", "DELETE"})
)
def test_member_without_the_capability_gets_403_and_changes_nothing(
    acme, org, member_api, route, method
):
    before = snapshot(org)
    response = call(member_api, method, url_for(route, acme), route)
    assert response.status_code == 403, response.content
    assert snapshot(org) == before


@pytest.mark.parametrize(("route", "method"), cases(STAFF_ROUTES))
def test_staff_routes_refuse_tenant_users_with_404(db, owner_api, route, method):
    url = reverse(route.name, kwargs=dict.fromkeys(route.kwargs, "1"))
    assert owner_api.generic(method, url).status_code == 404


@pytest.mark.parametrize(("route", "method"), cases(STAFF_ROUTES))
def test_staff_routes_refuse_organization_keys_with_404(db, org_key, route, method):
    url = reverse(route.name, kwargs=dict.fromkeys(route.kwargs, "1"))
    assert bearer(org_key.key).generic(method, url).status_code == 404


@pytest.mark.parametrize(("route", "method"), cases(STAFF_ROUTES))
def test_staff_routes_refuse_provider_keys_lacking_the_scope(db, ingest_key, route, method):
    url = reverse(route.name, kwargs=dict.fromkeys(route.kwargs, "1"))
    response = bearer(ingest_key.key).generic(method, url)
    assert response.status_code == 403
    assert "'approvals' scope" in response.json()["detail"]


@pytest.mark.parametrize(("route", "method"), cases(STAFF_ROUTES))
def test_staff_routes_refuse_unauthenticated_with_401(db, route, method):
    url = reverse(route.name, kwargs=dict.fromkeys(route.kwargs, "1"))
    assert APIClient().generic(method, url).status_code == 401
