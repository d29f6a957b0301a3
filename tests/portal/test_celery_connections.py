"""Database connections around the tasks a worker runs (portal/celery.py): kept from one task to
the next as Django keeps them between requests, and dropped when a task failed, left its session
busy, outlived DATABASE_CONN_MAX_AGE, or when the server dropped them meanwhile."""

import time

import pytest
from celery import signals, states
from celery.fixups.django import DjangoWorkerFixup
from django.conf import settings
from django.db import connection, connections

from portal.celery import app, ping_task

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def persistent(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", True)
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    connection.close()
    yield
    connection.close()


@pytest.fixture(autouse=True)
def django_fixup():
    """Celery's Django fixup as a worker installs it (its task_prerun/postrun handlers)."""
    fixup = DjangoWorkerFixup(app).install()
    yield fixup
    signals.task_prerun.disconnect(fixup.on_task_prerun)
    signals.task_postrun.disconnect(fixup.on_task_postrun)
    signals.worker_process_init.disconnect(fixup.on_worker_process_init)
    signals.beat_embedded_init.disconnect(fixup.close_database)


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def run_as_worker(body=backend_pid, *, state=states.SUCCESS, eager=False):
    """What a worker does around a task: task_prerun, the body, task_postrun with its state."""
    ping_task.push_request(id="t", is_eager=eager)
    try:
        signals.task_prerun.send(sender=ping_task, task_id="t", task=ping_task, args=(), kwargs={})
        result = body()
        signals.task_postrun.send(
            sender=ping_task, task_id="t", task=ping_task, args=(), kwargs={}, state=state
        )
    finally:
        ping_task.pop_request()
    return result


def test_the_fixup_closes_connections_only_every_db_reuse_max_tasks():
    # Celery's Django fixup reads it under this name; unset, it closes them around every task.
    assert app.conf.get("CELERY_DB_REUSE_MAX") == settings.CELERY_DB_REUSE_MAX >= 100


def test_a_successful_task_leaves_its_connection_to_the_next():
    first = run_as_worker()
    assert connection.connection is not None
    assert run_as_worker() == first


def test_the_fixup_still_replaces_the_connection_every_db_reuse_max_tasks(django_fixup):
    django_fixup.db_reuse_max = 3
    pids = [run_as_worker() for _ in range(7)]
    assert len(set(pids[:3])) == 1
    assert pids[3] != pids[2]


def test_a_failed_task_closes_its_connection():
    first = run_as_worker(state=states.FAILURE)
    assert connection.connection is None
    assert run_as_worker() != first


def test_a_task_that_left_a_transaction_open_closes_its_connection():
    def leaves_a_transaction_open():
        pid = backend_pid()
        connection.connection.execute("BEGIN")
        return pid

    first = run_as_worker(leaves_a_transaction_open)
    assert connection.connection is None
    assert run_as_worker() != first


def test_a_connection_past_its_max_age_is_replaced():
    first = run_as_worker()
    connection.close_at = time.monotonic() - 1
    assert run_as_worker() != first


def test_a_connection_the_server_dropped_between_tasks_is_replaced():
    first = run_as_worker()
    with connections["default"]._nodb_cursor() as other:
        # pg_terminate_backend only signals: the session ends (and says so) a moment later.
        other.execute("SELECT pg_terminate_backend(%s, 10000)", [first])
    second = run_as_worker()  # the health check on its first query finds it gone
    assert second != first
    assert run_as_worker() == second


def test_an_eager_task_leaves_the_callers_connection_alone():
    first = backend_pid()
    run_as_worker(state=states.FAILURE, eager=True)
    assert backend_pid() == first
