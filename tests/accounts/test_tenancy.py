import pytest
from django.db import transaction

from accounts.models import AuditEvent, Membership
from accounts.services import audit_record
from accounts.tenancy import UnscopedQueryError


@pytest.mark.django_db
def test_unscoped_tenant_query_refuses_to_run(owner):
    with pytest.raises(UnscopedQueryError):
        list(Membership.objects.all())
    with pytest.raises(UnscopedQueryError):
        Membership.objects.filter(role="owner").count()
    with pytest.raises(UnscopedQueryError):
        Membership.objects.filter(role="owner").exists()
    with pytest.raises(UnscopedQueryError):
        Membership.objects.update(role="viewer")


@pytest.mark.django_db
def test_for_organization_only_sees_that_organization(org, other_org, owner, other_owner):
    assert [m.user for m in Membership.objects.for_organization(org)] == [owner]
    assert [m.user for m in Membership.objects.for_organization(other_org)] == [other_owner]


@pytest.mark.django_db
def test_audit_events_cannot_be_changed_or_deleted(org, owner):
    event = audit_record(organization=org, actor=owner, action="test.thing")
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        AuditEvent.all_objects.filter(pk=event.pk).update(action="test.other")
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        AuditEvent.all_objects.filter(pk=event.pk).delete()
    assert AuditEvent.all_objects.get(pk=event.pk).action == "test.thing"


@pytest.mark.django_db
def test_deleting_a_user_keeps_their_audit_events(org, owner):
    audit_record(organization=org, actor=owner, action="test.thing")
    owner.delete()
    event = AuditEvent.objects.for_organization(org).get(action="test.thing")
    assert event.actor is None
    assert event.actor_email == "owner@acme.example"
