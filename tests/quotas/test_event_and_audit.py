"""A move's timeline event and audit event go in with one statement: the stored rows equal
those ``save()`` stores, with and without an actor, reason and changes."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AuditEvent
from portal.rows import insert_together
from quotas.models import RequestEvent
from quotas.services._base import event_and_audit_build

pytestmark = pytest.mark.django_db


def _stored(obj) -> dict:
    row = type(obj).all_objects.get(pk=obj.pk)
    return {
        f.attname: getattr(row, f.attname)
        for f in row._meta.concrete_fields
        if f.attname not in ("id", "created_at")
    }


@pytest.mark.parametrize("with_actor", [True, False])
def test_one_statement_stores_what_save_stores(catalog, new_request, member, with_actor):
    capacity_request = new_request()
    at = timezone.now()
    kwargs = {
        "organization": capacity_request.organization,
        "capacity_request": capacity_request,
        "reservation": None,
        "target": capacity_request,
        "action": "capacity_request.pending_approval",
        "from_state": "checking",
        "to_state": "pending_approval",
        "actor": member if with_actor else None,
        "reason": "Beyond the usual limits: more than 64 GPUs." if with_actor else "",
        "at": at,
        "changes": {"total": "12.50", "starts_at": at.isoformat(), "nested": {"a": [1, None]}},
    }
    saved_event, saved_audit = event_and_audit_build(**kwargs)
    saved_event.save()
    saved_audit.save()
    event, audit = event_and_audit_build(**kwargs)
    with CaptureQueriesContext(connection) as queries:
        insert_together(event, audit)
    assert len(queries.captured_queries) == 1
    assert event.pk > saved_event.pk and audit.pk > saved_audit.pk
    assert not event._state.adding and not audit._state.adding
    assert _stored(event) == _stored(saved_event)
    assert _stored(audit) == _stored(saved_audit)
    assert AuditEvent.all_objects.get(pk=audit.pk).created_at == audit.created_at
    assert RequestEvent.all_objects.get(pk=event.pk).at == at
