"""Redis (broker and cache) stopped while requests are submitted over HTTP, then started again
empty (no persistence: whatever it queued is gone, as after losing a broker without AOF).

Every submission gets its normal answer (201, the request submitted), before, during and after
the outage; the health check says the broker is down meanwhile. After the restart the sweeper
and the e-mail sweeper (sent as beat would send them) re-dispatch what never ran, and every
request is decided exactly once: one move into checking, one decision, one e-mail."""

import pytest
import requests

from .common import assert_checked_once, assert_mailed_once, request_submit, states
from .harness import sized, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_submissions_during_a_broker_outage_are_answered_and_decided_once(
    stack, pool, org_key, account_manager
):
    stack.extra_env = {
        "QUOTAS_STUCK_AFTER_MINUTES": "0",
        "NOTIFICATIONS_EMAIL_RETRY_AFTER_MINUTES": "0",
    }
    redis = stack.redis_start()
    stack.web_start(workers=2)
    # kombu's Redis transport can end the worker when the connection drops while it holds an
    # unacknowledged message ("Unrecoverable error: AttributeError ... 'hostname'"): workers
    # run under a supervisor that restarts them, as in production (docs/deploy.md).
    stack.worker_supervise(concurrency=2)
    per_phase = sized(4, 20)

    ids = [request_submit(stack, org_key.key)["id"] for _ in range(per_phase)]

    stack.redis_stop(redis)
    health = requests.get(stack.url("/healthz"), timeout=30)
    assert (health.status_code, health.json()["broker"]) == (503, "unavailable")
    during = [request_submit(stack, org_key.key)["id"] for _ in range(per_phase)]
    assert set(states(during).values()) == {"submitted"}, "nothing can have run their checks"
    ids += during

    stack.redis_start()
    ids += [request_submit(stack, org_key.key)["id"] for _ in range(per_phase)]
    stack.task_send("quotas.requests_sweep_task")

    wait_for(
        lambda: set(states(ids).values()) == {"pending_approval"},
        timeout=120,
        what="every request to be decided",
        interval=0.5,
    )
    # Decisions taken while the broker was down could not enqueue their e-mails.
    stack.task_send("notifications.email_sweep_task")
    wait_for(stack.broker_idle, timeout=60, what="the queue to drain")
    for request_id in ids:
        assert_checked_once(request_id)
        assert_mailed_once(stack, request_id, state="pending_approval")
