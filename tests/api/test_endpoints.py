"""The endpoints themselves: the caller, organizations, members, invitations, keys, catalog."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import ApiKey, AuditEvent, Invitation, Membership, Role
from tests.factories import GpuSkuFactory, RegionFactory

from .conftest import bearer


def test_me_lists_memberships(owner_api, owner, org, other_org):
    Membership.all_objects.create(organization=other_org, user=owner, role=Role.VIEWER)
    body = owner_api.get("/api/v1/me/").json()
    assert body["email"] == owner.email
    assert body["credential"]["kind"] == "session"
    assert [(m["organization"], m["role"]) for m in body["memberships"]] == [
        ("acme", "owner"),
        ("globex", "viewer"),
    ]


def test_org_key_sees_only_its_organization(org_key, owner, other_org):
    Membership.all_objects.create(organization=other_org, user=owner, role=Role.OWNER)
    client = bearer(org_key.key)
    assert [o["slug"] for o in client.get("/api/v1/orgs/").json()["results"]] == ["acme"]
    assert [m["organization"] for m in client.get("/api/v1/me/").json()["memberships"]] == ["acme"]
    # The user may see globex, the key may not.
    assert client.get("/api/v1/orgs/globex/members/").status_code == 404


def test_organization_list_and_detail_carry_the_callers_role(member_api, org):
    body = member_api.get("/api/v1/orgs/").json()
    assert [(o["slug"], o["role"]) for o in body["results"]] == [("acme", "member")]
    assert member_api.get("/api/v1/orgs/acme/").json()["role"] == "member"


def test_key_acts_with_its_users_current_role(org, admin):
    from accounts.apikeys import api_key_create_for_organization

    issued = api_key_create_for_organization(
        organization=org, name="admin's", scopes=["read", "write"], created_by=admin
    )
    client = bearer(issued.key)
    assert client.get("/api/v1/orgs/acme/audit-events/").status_code == 200
    Membership.all_objects.filter(user=admin).update(role=Role.VIEWER)
    assert client.get("/api/v1/orgs/acme/audit-events/").status_code == 403
    Membership.all_objects.filter(user=admin).delete()
    assert client.get("/api/v1/orgs/acme/").status_code == 401


def test_owner_changes_a_role_and_it_is_audited(owner_api, org, member):
    membership = Membership.objects.for_organization(org).get(user=member)
    response = owner_api.patch(
        f"/api/v1/orgs/acme/members/{membership.pk}/", {"role": "admin"}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {**response.json(), "role": "admin", "email": member.email}
    event = AuditEvent.objects.for_organization(org).get(action="membership.role_changed")
    assert event.changes["role"] == ["member", "admin"]


def test_owner_removes_a_member(owner_api, org, member):
    membership = Membership.objects.for_organization(org).get(user=member)
    assert owner_api.delete(f"/api/v1/orgs/acme/members/{membership.pk}/").status_code == 204
    assert not Membership.all_objects.filter(pk=membership.pk).exists()


def test_invitation_create_list_revoke(owner_api, org):
    response = owner_api.post(
        "/api/v1/orgs/acme/invitations/",
        {"email": "New.Person@Example.com", "role": "admin"},
        format="json",
    )
    assert response.status_code == 201
    created = response.json()
    assert created["email"] == "new.person@example.com"
    assert created["status"] == "pending"
    assert "token" not in created
    assert len(mail.outbox) == 0  # sent after commit; the test transaction never commits
    listed = owner_api.get("/api/v1/orgs/acme/invitations/").json()["results"]
    assert [i["id"] for i in listed] == [created["id"]]
    assert owner_api.delete(f"/api/v1/orgs/acme/invitations/{created['id']}/").status_code == 204
    assert Invitation.all_objects.get(pk=created["id"]).revoked_at is not None
    assert owner_api.get("/api/v1/orgs/acme/invitations/").json()["results"] == []


def test_api_key_is_shown_once_and_works(owner_api, org):
    response = owner_api.post(
        "/api/v1/orgs/acme/api-keys/", {"name": "deploys", "scopes": ["read"]}, format="json"
    )
    assert response.status_code == 201
    created = response.json()
    assert created["key"].startswith(created["prefix"] + "_")
    assert created["state"] == "active"
    assert bearer(created["key"]).get("/api/v1/orgs/acme/members/").status_code == 200
    listed = owner_api.get("/api/v1/orgs/acme/api-keys/").json()["results"]
    assert "key" not in listed[0]
    assert owner_api.get(f"/api/v1/orgs/acme/api-keys/{created['id']}/").json().get("key") is None


def test_revoking_a_key_through_the_api_stops_it(owner_api, org_key):
    client = bearer(org_key.key)
    assert client.get("/api/v1/me/").status_code == 200
    response = owner_api.delete(f"/api/v1/orgs/acme/api-keys/{org_key.api_key.pk}/")
    assert response.status_code == 204
    assert client.get("/api/v1/me/").status_code == 401
    listed = owner_api.get("/api/v1/orgs/acme/api-keys/?active=false").json()["results"]
    assert [k["state"] for k in listed] == ["revoked"]


def test_api_keys_cannot_create_api_keys(org_key, org):
    response = bearer(org_key.key).post(
        "/api/v1/orgs/acme/api-keys/", {"name": "child", "scopes": ["read"]}, format="json"
    )
    assert response.status_code == 403
    assert ApiKey.objects.for_organization(org).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "scopes": ["read"]}, "name"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["approvals"]}, "scopes.0"),
        ({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ],
)
def test_bad_key_requests_name_the_field_and_write_nothing(owner_api, org, body, field):
    response = owner_api.post("/api/v1/orgs/acme/api-keys/", body, format="json")
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]]
    assert ApiKey.objects.for_organization(org).count() == 0


def test_key_with_expiry_expires(owner_api, org):
    soon = (timezone.now() + timedelta(days=1)).isoformat()
    created = owner_api.post(
        "/api/v1/orgs/acme/api-keys/",
        {"name": "temp", "scopes": ["read"], "expires_at": soon},
        format="json",
    ).json()
    ApiKey.all_objects.filter(pk=created["id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert bearer(created["key"]).get("/api/v1/me/").status_code == 401


def test_catalog_is_readable_by_any_authenticated_caller(member_api, ingest_key):
    RegionFactory(code="us-east-1", name="New Jersey 1")
    GpuSkuFactory(code="h100-sxm-80gb", name="H100 SXM 80GB", list_price_per_gpu_hour="2.4900")
    regions = member_api.get("/api/v1/regions/").json()["results"]
    assert "us-east-1" in [r["code"] for r in regions]
    sku = bearer(ingest_key.key).get("/api/v1/skus/h100-sxm-80gb/").json()
    assert sku["list_price_per_gpu_hour"] == "2.4900"


def test_superuser_creates_provider_key_through_the_api(superuser, api):
    from allauth.mfa.totp.internal.auth import TOTP

    TOTP.activate(superuser, "JBSWY3DPEHPK3PXP")
    api.force_login(superuser)
    response = api.post(
        "/api/v1/staff/api-keys/", {"name": "metering", "scopes": ["usage:ingest"]}, format="json"
    )
    assert response.status_code == 201, response.content
    assert ApiKey.all_objects.get(pk=response.json()["id"]).organization is None


def test_account_manager_cannot_create_provider_keys(account_manager, api):
    api.force_login(account_manager)
    response = api.post(
        "/api/v1/staff/api-keys/", {"name": "x", "scopes": ["approvals"]}, format="json"
    )
    assert response.status_code == 403


def test_staff_organizations_lists_the_managers_tenants(account_manager, api, org, other_org):
    api.force_login(account_manager)
    body = api.get("/api/v1/staff/organizations/").json()
    assert [o["slug"] for o in body["results"]] == ["acme"]


def test_staff_session_reads_a_managed_tenant_but_cannot_write(account_manager, api, org, member):
    api.force_login(account_manager)
    assert api.get("/api/v1/orgs/acme/members/").status_code == 200
    membership = Membership.objects.for_organization(org).get(user=member)
    response = api.patch(
        f"/api/v1/orgs/acme/members/{membership.pk}/", {"role": "admin"}, format="json"
    )
    assert response.status_code == 403


def test_staff_reading_a_tenant_is_in_its_audit_log_once_a_session(account_manager, api, org):
    api.force_login(account_manager)
    assert api.get("/api/v1/orgs/acme/members/").status_code == 200
    assert api.get("/api/v1/orgs/acme/audit-events/").status_code == 200
    events = AuditEvent.objects.for_organization(org).filter(action="staff.accessed")
    assert [(e.actor_email, e.changes["path"]) for e in events] == [
        (account_manager.email, "/api/v1/orgs/acme/members/")
    ]
