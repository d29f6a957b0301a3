"""Fifty approvals at the same instant against one oversubscribed pool: exactly the requests
that fit are approved, the rest are refused and left waiting, and no instant is over capacity."""

import threading
from datetime import timedelta

import pytest
from django.db import connection

from quotas.capacity import InsufficientCapacity
from quotas.models import CapacityRequest, Reservation
from quotas.selectors.availability import pool_levels
from quotas.services import capacity_request_approve
from quotas.workflow import RequestState as S

APPROVALS = 50


@pytest.mark.django_db(transaction=True)
def test_fifty_simultaneous_approvals_never_overcommit_the_pool(
    eager_celery, catalog, east_pool, request_in_state, account_manager
):
    # 64 GPUs; 50 requests of 8 GPUs over overlapping windows: only 8 can fit at the overlap.
    first = request_in_state(S.PENDING_APPROVAL, gpu_count=8)
    requests = [first] + [
        request_in_state(
            S.PENDING_APPROVAL,
            gpu_count=8,
            starts_at=first.starts_at + timedelta(hours=i % 5),
        )
        for i in range(1, APPROVALS)
    ]
    barrier = threading.Barrier(APPROVALS)
    outcomes, unexpected = [], []

    def approve(capacity_request):
        try:
            barrier.wait(timeout=30)
            capacity_request_approve(capacity_request=capacity_request, actor=account_manager)
            outcomes.append("approved")
        except InsufficientCapacity:
            outcomes.append("refused")
        except Exception as exc:
            unexpected.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(r,)) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not unexpected, unexpected
    assert outcomes.count("approved") == 8
    assert outcomes.count("refused") == APPROVALS - 8
    states = list(CapacityRequest.all_objects.values_list("state", flat=True))
    assert states.count(S.APPROVED) == 8 and states.count(S.PENDING_APPROVAL) == APPROVALS - 8
    assert Reservation.all_objects.count() == 8
    window_end = first.ends_at + timedelta(hours=5)
    for level in pool_levels(pool=east_pool, starts_at=first.starts_at, ends_at=window_end):
        assert level.held <= level.capacity
