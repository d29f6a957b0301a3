"""Approvals racing over HTTP for one pool, through two gunicorn workers and two Celery
workers (which send the e-mails). Every request asks 8 GPUs of a 64-GPU pool; half the windows
overlap the other half, so at most 8 grants fit at any instant and exactly 8 must be granted,
whatever the order. The rest get 409 — never a 500, never a pool committed beyond its capacity
at any instant."""

import threading
from datetime import timedelta

import pytest
from django.db import connection

from quotas.checks import capacity_request_run_checks
from quotas.models import CapacityRequest, Reservation
from quotas.services import capacity_request_create

from .common import assert_mailed_once
from .conftest import POOL_GPUS, soon
from .harness import api_session, sized, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

GPUS = 8

PEAK_SQL = """
SELECT coalesce(max(committed), 0) FROM (
    SELECT b.starts_at,
           (SELECT coalesce(sum(h.gpu_count), 0) FROM quotas_capacityhold h
             WHERE h.pool_id = b.pool_id AND h.released_at IS NULL
               AND h.starts_at <= b.starts_at AND h.ends_at > b.starts_at) AS committed
    FROM quotas_capacityhold b WHERE b.pool_id = %s AND b.released_at IS NULL
) AS instants
"""


def pending_requests(org, member, pool, count: int) -> list[int]:
    ids = []
    for i in range(count):
        starts_at = soon(3 if i % 2 else 5)
        capacity_request = capacity_request_create(
            organization=org,
            actor=member,
            sku=pool.sku,
            region=pool.region,
            gpu_count=GPUS,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(days=4),
            justification="Training run",
        )
        capacity_request_run_checks(request_id=capacity_request.pk)
        ids.append(capacity_request.pk)
    assert set(CapacityRequest.all_objects.filter(pk__in=ids).values_list("state", flat=True)) == {
        "pending_approval"
    }
    return ids


def test_racing_approvals_grant_exactly_what_fits(
    stack, org, member, pool, approvals_key, account_manager
):
    ids = pending_requests(org, member, pool, sized(20, 50))
    stack.redis_start()
    stack.web_start(workers=2)
    stack.worker_start("worker-1")
    stack.worker_start("worker-2")

    barrier = threading.Barrier(len(ids))
    answers: dict[int, int] = {}

    def approve(request_id: int) -> None:
        session = api_session(approvals_key.key)
        barrier.wait(timeout=60)
        response = session.post(
            stack.url(f"/api/v1/staff/requests/{request_id}/approve/"), timeout=120
        )
        answers[request_id] = response.status_code

    threads = [threading.Thread(target=approve, args=(pk,)) for pk in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert len(answers) == len(ids)

    fits = POOL_GPUS // GPUS
    approved = sorted(pk for pk, status in answers.items() if status == 200)
    assert sorted(answers.values()) == [200] * fits + [409] * (len(ids) - fits)
    assert (
        sorted(
            CapacityRequest.all_objects.filter(pk__in=ids, state="approved").values_list(
                "pk", flat=True
            )
        )
        == approved
    )
    assert Reservation.all_objects.filter(pool=pool).count() == fits
    with connection.cursor() as cursor:
        cursor.execute(PEAK_SQL, [pool.pk])
        assert cursor.fetchone()[0] == POOL_GPUS

    wait_for(stack.broker_idle, timeout=60, what="the e-mail tasks to drain")
    for pk in approved:
        assert_mailed_once(stack, pk, state="approved")
