"""The provider admin for people and organizations: audited, read-only where pages own it."""

import pytest
from django.urls import reverse

from accounts.models import AuditEvent, Membership, Organization, Role, StaffRole, User
from accounts.services import audit_record
from tests.conftest import enable_totp
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(db):
    user = UserFactory(email="root@provider.example", is_superuser=True)
    enable_totp(user)
    return user


def test_is_staff_follows_the_provider_staff_role(db):
    customer = UserFactory(is_staff=True)
    assert not User.objects.get(pk=customer.pk).is_staff
    planner = UserFactory(staff_role=StaffRole.CAPACITY_PLANNER)
    assert User.objects.get(pk=planner.pk).is_staff


def test_superuser_creates_an_organization_with_its_first_owner(client, superuser, db):
    customer = UserFactory(email="founder@initech.example")
    manager = UserFactory(staff_role=StaffRole.ACCOUNT_MANAGER)
    client.force_login(superuser)
    response = client.post(
        reverse("admin:accounts_organization_add"),
        {
            "name": "Initech",
            "slug": "initech",
            "owner": customer.pk,
            "account_manager": manager.pk,
            "time_zone": "America/Chicago",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    org = Organization.objects.get(slug="initech")
    assert org.account_manager == manager
    assert Membership.objects.for_organization(org).get(user=customer).role == Role.OWNER
    assert AuditEvent.objects.for_organization(org).filter(action="organization.created").exists()


def test_staff_changes_to_an_organization_are_in_its_audit_log(client, superuser, org, owner):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:accounts_organization_change", args=[org.pk]),
        {
            "name": "Acme",
            "status": "suspended",
            "account_manager": "",
            "time_zone": "UTC",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "1",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-id": Membership.objects.for_organization(org).get().pk,
            "memberships-0-organization": org.pk,
        },
    )
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.status == "suspended"
    event = AuditEvent.objects.for_organization(org).get(action="organization.changed_by_staff")
    assert event.changes == {"status": "suspended"}
    assert event.actor == superuser


def test_account_managers_may_look_but_not_change(client, org, account_manager):
    client.force_login(account_manager)
    assert client.get(reverse("admin:accounts_organization_changelist")).status_code == 200
    assert client.get(reverse("admin:accounts_auditevent_changelist")).status_code == 200
    url = reverse("admin:accounts_organization_change", args=[org.pk])
    response = client.post(url, {"name": "Renamed", "status": "active", "time_zone": "UTC"})
    assert response.status_code == 403
    org.refresh_from_db()
    assert org.name == "Acme"


def test_audit_events_cannot_be_deleted_from_the_admin(client, superuser, org, owner):
    client.force_login(superuser)
    event = audit_record(organization=org, actor=owner, action="membership.removed")
    response = client.post(
        reverse("admin:accounts_auditevent_delete", args=[event.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert AuditEvent.objects.for_organization(org).filter(pk=event.pk).exists()
