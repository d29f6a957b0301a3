"""The written-out writes of the workflow store what the ORM stores: a move's timeline and
audit events together, its update of the request, and the checks' rows."""

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AuditEvent
from portal.rows import insert_together, save_fields
from quotas.models import CapacityRequest, RequestCheck, RequestEvent
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
        insert_together([event], [audit])
    assert len(queries.captured_queries) == 1
    assert event.pk > saved_event.pk and audit.pk > saved_audit.pk
    assert not event._state.adding and not audit._state.adding
    assert _stored(event) == _stored(saved_event)
    assert _stored(audit) == _stored(saved_audit)
    assert AuditEvent.all_objects.get(pk=audit.pk).created_at == audit.created_at
    assert RequestEvent.all_objects.get(pk=event.pk).at == at


def _row(obj) -> dict:
    row = type(obj).all_objects.get(pk=obj.pk)
    return {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields}


def test_save_fields_stores_what_save_with_update_fields_stores(
    catalog, new_request, member, east_pool
):
    saved, written = new_request(), new_request()
    names = ["state", "pool", "flagged", "decision_due_at", "signed_off_by", "capacity_available"]
    for capacity_request, store in (
        (saved, lambda obj: obj.save(update_fields=names)),
        (written, lambda obj: save_fields(obj, names)),
    ):
        capacity_request.state = "pending_approval"
        capacity_request.pool = east_pool
        capacity_request.flagged = True
        capacity_request.decision_due_at = timezone.now()
        capacity_request.signed_off_by = None
        capacity_request.capacity_available = False
        capacity_request.justification = "not in the list: not stored"
        store(capacity_request)
    skip = {"id", "created_at", "updated_at", "state_changed_at", "submitted_at", "signed_off_at",
            "decision_due_at"}  # fmt: skip
    assert {k: v for k, v in _row(written).items() if k not in skip} == {
        k: v for k, v in _row(saved).items() if k not in skip
    }
    assert _row(written)["justification"] == "Training run"
    assert _row(written)["decision_due_at"] == written.decision_due_at
    gone = CapacityRequest(pk=10**9, state="draft")
    with pytest.raises(DatabaseError):
        save_fields(gone, ["state"])


def test_insert_together_stores_what_bulk_create_stores(catalog, new_request):
    capacity_request = new_request()

    def checks(run):
        return [
            RequestCheck(
                organization_id=capacity_request.organization_id,
                request=capacity_request,
                run=run,
                name=name,
                outcome="warn",
                reason=f"{name} reason",
                figures={"value": "12.50", "pools": [{"pool": 1, "free_min": n}], "none": None},
            )
            for n, name in enumerate(("standing", "capacity", "contract"))
        ]

    bulk, written = checks(1), checks(2)
    RequestCheck.all_objects.bulk_create(bulk)
    with CaptureQueriesContext(connection) as queries:
        insert_together(written)
    assert len(queries.captured_queries) == 1
    assert [c.pk for c in written] == sorted(c.pk for c in written)
    for a, b in zip(bulk, written, strict=True):
        ra, rb = _row(a), _row(b)
        for row in (ra, rb):
            del row["id"], row["created_at"], row["run"]
        assert ra == rb
