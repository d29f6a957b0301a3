"""A Celery worker killed with SIGKILL in the middle of the automatic checks.

The checks task commits the move to ``checking``, then runs the checks and decides in a second
transaction. The test holds a SHARE lock on the check results table, so the worker blocks on
writing its results (mid-task, step one committed, step two open) — an honest stand-in for a
slow check, with no test hook in the code. Then it kills the worker and releases the lock: the
orphaned PostgreSQL session rolls back, and the request must still reach its next state exactly
once, with one e-mail.

- ``child``: only the pool child dies; the main process, with ``task_reject_on_worker_lost``,
  puts the message back and runs it again (the visibility timeout is an hour: not the rescue).
- ``worker``: the main process and its child die together; a new worker gets the unacknowledged
  message back after the (short) visibility timeout, and the sweeper re-dispatches it as well.
"""

import os
import signal

import psycopg
import pytest
from django.db import connection

from quotas.models import CapacityRequest

from .common import assert_checked_once, assert_mailed_once, request_moves, request_submit
from .harness import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def blocked_check_writer(dbname: str) -> int | None:
    """The PostgreSQL pid of a session waiting on a lock to insert check results."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
            "AND query LIKE 'INSERT INTO \"quotas_requestcheck\"%%'",
            [dbname],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def session_gone(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is None


@pytest.mark.parametrize("victim", ["child", "worker"])
def test_worker_killed_mid_checks_decides_once_and_mails_once(
    stack, pool, org_key, account_manager, victim
):
    stack.extra_env = {
        "CELERY_VISIBILITY_TIMEOUT": "3600" if victim == "child" else "5",
        "QUOTAS_STUCK_AFTER_MINUTES": "0",
    }
    stack.redis_start()
    stack.web_start()
    worker = stack.worker_start("worker-1")
    dbname = connection.settings_dict["NAME"]

    blocker = psycopg.connect(stack.database_url.replace("postgres://", "postgresql://"))
    try:
        blocker.execute("LOCK TABLE quotas_requestcheck IN SHARE MODE")
        request_id = request_submit(stack, org_key.key)["id"]

        orphan = wait_for(
            lambda: blocked_check_writer(dbname),
            timeout=60,
            what="the worker to block while writing the check results",
        )
        assert CapacityRequest.all_objects.get(pk=request_id).state == "checking"

        children = worker.children()
        assert children, "a prefork worker runs tasks in a child"
        if victim == "child":
            for pid in children:
                os.kill(pid, signal.SIGKILL)
        else:
            worker.kill()
            wait_for(lambda: not worker.group_alive(), timeout=10, what="the worker to die")
    finally:
        blocker.rollback()
        blocker.close()

    # The killed task's session had not committed its second step: it rolls back.
    wait_for(lambda: session_gone(orphan), timeout=30, what="the orphaned session to end")

    if victim == "worker":
        assert request_moves(request_id) == ["draft", "submitted", "checking"]
        stack.worker_start("worker-2")
        stack.task_send("quotas.requests_sweep_task")

    wait_for(
        lambda: CapacityRequest.all_objects.get(pk=request_id).state == "pending_approval",
        timeout=90,
        what="the request to be decided",
    )
    wait_for(stack.broker_idle, timeout=60, what="the queue to drain")
    wait_for(
        lambda: any(account_manager.email == m["To"] for m in stack.mails()),
        timeout=30,
        what="the account manager's e-mail",
    )
    wait_for(stack.broker_idle, timeout=60, what="the e-mail tasks to drain")
    assert_checked_once(request_id)
    assert_mailed_once(stack, request_id)
