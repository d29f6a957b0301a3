"""A backlog of alert evaluations does not delay a tenant's submission.

A usage ingest over HTTP enqueues the task that fans out the alert evaluations of what it
touched, and many more evaluations are sent as the scans would send them, all before the
request is submitted: on one shared queue the checks would wait behind every one of them.
With a worker consuming only the `workflow` queue (as the production worker group of
docs/deploy.md), the checks run at once and every alert evaluation is still queued, none lost
and none run. Without the routing the checks would sit
in the one queue no such worker reads, and the test times out."""

import pytest

from .common import assert_checked_once, request_submit, states
from .harness import api_session, sized, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_checks_run_while_alert_evaluations_wait_in_their_own_queue(
    stack, pool, org, org_key, ingest_key, account_manager
):
    stack.redis_start()
    stack.web_start()
    response = api_session(ingest_key.key).post(
        stack.url("/api/v1/usage/ingest"),
        data=b"organization,sku,region,hour,gpu_hours\n"
        b"acme,h100-sxm,us-east-1,2026-01-01T00:00:00Z,8.0000\n",
        headers={"Content-Type": "text/csv"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    # The ingest's own: one task that fans out the evaluations of the organizations it named.
    wait_for(
        lambda: stack.broker_state()["queues"]["alerts"] == 1,
        timeout=10,
        what="the ingest to enqueue its alert evaluations",
    )
    backlog = sized(300, 3000)
    stack.task_send("contracts.quota_alerts_task", org.pk, times=backlog)
    assert stack.broker_state()["queues"]["alerts"] == 1 + backlog

    stack.worker_start("workflow", concurrency=1, queues=["workflow"])
    ids = [request_submit(stack, org_key.key)["id"] for _ in range(3)]

    wait_for(
        lambda: set(states(ids).values()) == {"pending_approval"},
        timeout=30,
        what="the checks of every request",
        interval=0.2,
    )
    for request_id in ids:
        assert_checked_once(request_id)
    state = stack.broker_state()
    assert state["queues"]["alerts"] == 1 + backlog, "no alert evaluation ran or was lost"
    # The decisions' e-mails wait for the delivery workers; nothing else went anywhere.
    assert state["queues"]["delivery"] >= len(ids)
    assert state["queues"]["workflow"] == 0
    assert state["queues"]["celery"] == 0
