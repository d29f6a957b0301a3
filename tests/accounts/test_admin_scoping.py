"""The provider admin keeps the pages' rule: an account manager sees only the organizations
they manage (their people, invitations, audit events and capacity holds); capacity planners
and superusers see every organization."""

import pytest
from django.urls import reverse

from accounts.models import AuditEvent, Invitation
from accounts.services import audit_record, invitation_create
from quotas.capacity import hold_place
from quotas.models import CapacityHold
from tests.conftest import make_member
from tests.factories import CapacityPoolFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def both_orgs(org, other_org, owner, other_owner, account_manager):
    """Acme managed by ``account_manager``, Globex by nobody; an invitation, an audit event
    and a capacity hold in each."""
    from datetime import timedelta

    from django.utils import timezone

    from quotas.capacity import capacity_change_add

    pool = CapacityPoolFactory()
    capacity_change_add(
        pool=pool,
        gpus_delta=64,
        effective_at=timezone.now() - timedelta(days=1),
        reason="installed",
        actor=None,
    )
    starts_at = timezone.now() + timedelta(days=3)
    for organization, inviter in ((org, owner), (other_org, other_owner)):
        invitation_create(
            organization=organization,
            email=f"new@{organization.slug}.example",
            role="member",
            invited_by=inviter,
        )
        audit_record(organization=organization, actor=inviter, action=f"probe.{organization.slug}")
        hold_place(
            pool=pool,
            organization=organization,
            gpu_count=8,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(days=1),
            kind=CapacityHold.Kind.RESERVATION,
            actor=None,
        )
    return org, other_org


def changelist(client, name):
    response = client.get(reverse(f"admin:{name}_changelist"))
    assert response.status_code == 200
    return response.context["cl"].queryset


def test_account_manager_sees_only_the_organizations_they_manage(
    client, both_orgs, account_manager
):
    org, other_org = both_orgs
    client.force_login(account_manager)
    assert list(changelist(client, "accounts_organization")) == [org]
    assert {i.organization for i in changelist(client, "accounts_invitation")} == {org}
    assert {e.organization for e in changelist(client, "accounts_auditevent")} == {org}
    assert {h.organization for h in changelist(client, "quotas_capacityhold")} == {org}
    users = {u.email for u in changelist(client, "accounts_user")}
    assert "owner@acme.example" in users
    assert "owner@globex.example" not in users
    theirs = reverse("admin:accounts_organization_change", args=[other_org.pk])
    assert client.get(theirs).status_code == 302  # "does not exist", like any unknown id
    event = AuditEvent.all_objects.get(action="probe.globex")
    assert (
        client.get(reverse("admin:accounts_auditevent_change", args=[event.pk])).status_code == 302
    )
    invitation = Invitation.all_objects.get(organization=other_org)
    assert (
        client.get(reverse("admin:accounts_invitation_change", args=[invitation.pk])).status_code
        == 302
    )
    listing = client.get(reverse("admin:accounts_auditevent_changelist")).content.decode()
    assert "Globex" not in listing


def test_capacity_planner_sees_every_organization(client, both_orgs, capacity_planner):
    org, other_org = both_orgs
    client.force_login(capacity_planner)
    assert set(changelist(client, "accounts_organization")) == {org, other_org}
    assert {e.organization for e in changelist(client, "accounts_auditevent")} >= {org, other_org}
    assert {h.organization for h in changelist(client, "quotas_capacityhold")} == {org, other_org}
    make_member(other_org, email="late@globex.example")
    assert "late@globex.example" in {u.email for u in changelist(client, "accounts_user")}
