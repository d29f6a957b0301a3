"""The request lock is a statement written once: it returns what the ORM's locked query with
its four related rows returned, in one query, and a missing request is DoesNotExist."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from quotas.models import CapacityRequest
from quotas.services._base import request_lock

pytestmark = pytest.mark.django_db

RELATED = ("organization", "sku", "region", "requested_by")


def reference_lock(pk: int) -> CapacityRequest:
    return (
        CapacityRequest.objects.unscoped_for_staff()
        .select_for_update(of=("self",))
        .select_related(*RELATED)
        .get(pk=pk)
    )


def _values(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def _as_dicts(capacity_request: CapacityRequest) -> list:
    rows = [_values(capacity_request)]
    for name in RELATED:
        related = getattr(capacity_request, name)
        rows.append(None if related is None else (type(related), _values(related)))
    return rows


def test_the_lock_reads_what_the_orm_read(catalog, org, new_request, member):
    with_requester = new_request(alternative_regions=[])
    without_requester = new_request(submit=False)
    CapacityRequest.all_objects.filter(pk=without_requester.pk).update(requested_by=None)
    for capacity_request in (with_requester, without_requester):
        with transaction.atomic():
            with CaptureQueriesContext(connection) as queries:
                locked = request_lock(capacity_request.pk)
                found = _as_dicts(locked)
            assert len(queries.captured_queries) == 1
            assert "FOR UPDATE OF r" in queries.captured_queries[0]["sql"]
            assert found == _as_dicts(reference_lock(capacity_request.pk))
            assert not locked._state.adding
    assert found[-1] is None  # no requester


def test_a_missing_request_is_does_not_exist(db):
    with transaction.atomic(), pytest.raises(CapacityRequest.DoesNotExist):
        request_lock(10**9)
