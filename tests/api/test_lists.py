"""Every list endpoint: a constant number of queries as page size and related rows grow,
stable ordering that ends with the primary key, filters."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.apikeys import api_key_create_for_organization
from accounts.models import AuditEvent, Membership, Role
from accounts.services import audit_record, invitation_create
from notifications.models import Notification
from tests.conftest import make_member
from tests.factories import GpuSkuFactory, OrganizationFactory, RegionFactory

from .conftest import bearer


def grow_acme(org, owner, n):
    """n more of everything acme's lists show, each with its related rows."""
    for i in range(n):
        user = make_member(org, Role.MEMBER, email=f"m{n}-{i}@acme.example")
        invitation_create(
            organization=org, email=f"i{n}-{i}@acme.example", role="viewer", invited_by=owner
        )
        api_key_create_for_organization(
            organization=org, name=f"k{n}-{i}", scopes=["read"], created_by=owner
        )
        audit_record(organization=org, actor=user, action="test.event", target=org)
        Notification.objects.create(
            recipient=owner, organization=org, event="test.event", title="t", dedupe_key=f"{n}-{i}"
        )
        RegionFactory(code=f"r{n}-{i}")
        GpuSkuFactory(code=f"s{n}-{i}")
        other = OrganizationFactory(slug=f"o{n}-{i}")
        Membership.all_objects.create(organization=other, user=owner, role=Role.ADMIN)


LISTS = [
    "/api/v1/orgs/acme/members/",
    "/api/v1/orgs/acme/invitations/",
    "/api/v1/orgs/acme/audit-events/",
    "/api/v1/orgs/acme/api-keys/",
    "/api/v1/orgs/acme/notifications/",
    "/api/v1/orgs/",
    "/api/v1/regions/",
    "/api/v1/skus/",
]


def count_queries(client, url):
    client.get(url)  # warm up: the first use of a key records it (once a minute)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(queries), response.json()


@pytest.mark.parametrize("url", LISTS)
def test_list_runs_constant_queries_as_rows_and_page_size_grow(org, owner, org_key, owner_api, url):
    # An organization key sees only its organization in /orgs/: list those as the user.
    client = owner_api if url == "/api/v1/orgs/" else bearer(org_key.key)
    grow_acme(org, owner, 2)
    small, body = count_queries(client, f"{url}?page_size=2")
    assert len(body["results"]) == 2
    grow_acme(org, owner, 8)
    large, body = count_queries(client, f"{url}?page_size=20")
    assert len(body["results"]) > 2
    assert large == small


def test_staff_organization_list_runs_constant_queries(account_manager, approvals_key):
    from accounts.models import Organization

    def add(n):
        for i in range(n):
            OrganizationFactory(slug=f"so{n}-{i}", account_manager=account_manager)

    add(2)
    client = bearer(approvals_key.key)
    small, _ = count_queries(client, "/api/v1/staff/organizations/?page_size=2")
    add(10)
    large, body = count_queries(client, "/api/v1/staff/organizations/?page_size=20")
    assert body["count"] == Organization.objects.count()  # the superuser sees all
    assert large == small


def test_paging_through_equal_sort_keys_sees_every_row_once(org, owner, owner_api):
    stamp = timezone.now()
    for i in range(7):
        AuditEvent.all_objects.create(
            organization=org, action=f"test.same_time.{i}", created_at=stamp
        )
    seen = []
    url = "/api/v1/orgs/acme/audit-events/?page_size=3&ordering=created_at"
    while url:
        body = owner_api.get(url).json()
        seen.extend(row["id"] for row in body["results"])
        url = body["next"]
    assert sorted(seen) == sorted(
        AuditEvent.objects.for_organization(org).values_list("id", flat=True)
    )
    assert seen == sorted(seen)  # ties broken by the primary key, ascending with the sort


def test_audit_events_filter_by_action_actor_and_window(org, owner, member, owner_api):
    now = timezone.now()
    old = audit_record(organization=org, actor=member, action="membership.role_changed", target=org)
    recent = audit_record(organization=org, actor=owner, action="invitation.created", target=org)

    def ids(query):
        return [
            row["id"]
            for row in owner_api.get(f"/api/v1/orgs/acme/audit-events/?{query}").json()["results"]
        ]

    assert ids("action=membership.") == [old.pk]
    assert ids(f"actor_email={member.email}") == [old.pk]
    since = (now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert recent.pk in ids(f"since={since}")
    assert ids(f"until={since}") == []
    bad = owner_api.get("/api/v1/orgs/acme/audit-events/?since=yesterday")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "since"


def test_ordering_by_an_unknown_field_is_ignored_safely(owner_api, org):
    response = owner_api.get("/api/v1/orgs/acme/members/?ordering=user__password")
    assert response.status_code == 200


def test_members_filter_by_role(owner_api, org, owner, member):
    body = owner_api.get("/api/v1/orgs/acme/members/?role=owner").json()
    assert [row["email"] for row in body["results"]] == [owner.email]
