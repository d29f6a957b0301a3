"""A worker keeps its PostgreSQL session from one task to the next, as a web process keeps its
connection between requests, and replaces it when the server drops it (a failover, a restart, an
idle timeout) without failing the next task.

Celery's Django fixup alone would close the connection after every task: each check would pay a
new session (portal/celery.py). Kept sessions bring the opposite risk, a task that runs on a
connection the server already closed; the health check on a task's first query answers it.
"""

import psutil
import pytest
from django.db import connection

from quotas.models import CapacityRequest

from .common import assert_checked_once, assert_mailed_once, request_submit
from .harness import wait_for

pytestmark = [pytest.mark.faults]


def worker_sessions(worker) -> set[int]:
    """PostgreSQL backend pids of the worker's processes' connections (by client port)."""
    db_port = int(connection.settings_dict["PORT"] or 5432)
    ports = set()
    for pid in [worker.pid, *worker.children()]:
        try:
            sockets = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        ports.update(s.laddr.port for s in sockets if s.raddr and s.raddr.port == db_port)
    if not ports:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s)", [sorted(ports)]
        )
        return {row[0] for row in cursor.fetchall()}


def decided(stack, key, days: float) -> int:
    request_id = request_submit(stack, key, days=days)["id"]
    wait_for(
        lambda: CapacityRequest.all_objects.get(pk=request_id).state == "pending_approval",
        timeout=60,
        what="the request to be decided",
    )
    wait_for(stack.broker_idle, timeout=60, what="the e-mail tasks to drain")
    return request_id


def test_worker_keeps_its_session_and_replaces_one_the_server_dropped(
    stack, pool, org_key, account_manager
):
    stack.redis_start()
    stack.web_start()
    worker = stack.worker_start("worker-1")

    first = decided(stack, org_key.key, days=3)
    kept = worker_sessions(worker)
    assert len(kept) == 1, "the pool child holds one session after its tasks"
    second = decided(stack, org_key.key, days=5)
    assert worker_sessions(worker) == kept

    # The server drops it between tasks, as a failover would.
    with connection.cursor() as cursor:
        # Waits for the session to end (pg_terminate_backend alone only signals it).
        cursor.execute("SELECT pg_terminate_backend(%s, 10000)", [next(iter(kept))])
    third = decided(stack, org_key.key, days=7)
    assert worker_sessions(worker).isdisjoint(kept)

    for request_id in (first, second, third):
        assert_checked_once(request_id)
        assert_mailed_once(stack, request_id)
    assert "Traceback" not in worker.log_text()
