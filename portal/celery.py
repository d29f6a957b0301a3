import contextlib
import os
from pathlib import Path

from celery import Celery, Task, signals, states
from django.db import DatabaseError, close_old_connections, connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.base")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def filesystem_broker_folders_ensure() -> None:
    """Create the folders of kombu's filesystem broker, which it expects to exist.

    Every process that publishes or consumes (web, worker, beat) imports this module, so the
    first one to start creates them; with a Redis broker there is nothing to do.
    """
    if not str(app.conf.broker_url).startswith("filesystem:"):
        return
    options = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


def queue_names() -> list[str]:
    """Every queue a task can be routed to (CELERY_TASK_QUEUES), the default one included: what a
    worker that must run everything consumes (`-Q` of them all, joined by commas)."""
    return [queue.name for queue in app.conf.task_queues]


@app.on_after_configure.connect
def _on_after_configure(sender: Celery, **kwargs: object) -> None:
    filesystem_broker_folders_ensure()


def _ran_by_worker(task: Task | None) -> bool:
    """Whether the task runs in a worker (not eagerly, inside a caller's transaction)."""
    return task is not None and not getattr(task.request, "is_eager", False)


def _connection_idle(database) -> bool:
    """Whether a connection was left as a successful task must leave it: outside any atomic
    block, autocommit on, and PostgreSQL's session idle (not in a transaction, nor in the
    middle of a statement that a time limit's signal interrupted)."""
    from psycopg.pq import TransactionStatus

    raw = database.connection
    return (
        not database.in_atomic_block
        and database.get_autocommit()
        and raw.info.transaction_status == TransactionStatus.IDLE
    )


# Database connections live across tasks, as they live across requests in the web processes.
# Celery's Django fixup closes every connection before and after each task, so each task paid a
# new PostgreSQL session (about 3 ms of the worker's CPU, plus the server's new backend) and
# prepared its statements again (portal/prepared.py). With CELERY_DB_REUSE_MAX set (settings)
# the fixup closes them only every that many tasks; these handlers do the rest of what Django
# does around a request (close_old_connections: DATABASE_CONN_MAX_AGE, and a health check on the
# first query of the next task), and drop the connection of a task that did not succeed or left
# its session busy, because Django cannot tell every broken connection from a usable one (a
# statement interrupted by the soft time limit's signal, say).
@signals.task_prerun.connect
def _database_connections_before_task(sender: Task | None = None, **kwargs: object) -> None:
    if _ran_by_worker(sender):
        close_old_connections()


@signals.task_postrun.connect
def _database_connections_after_task(
    sender: Task | None = None, state: str | None = None, **kwargs: object
) -> None:
    if not _ran_by_worker(sender):
        return
    for database in connections.all(initialized_only=True):
        if database.connection is None:
            continue
        if state == states.SUCCESS and _connection_idle(database):
            database.close_if_unusable_or_obsolete()
            continue
        with contextlib.suppress(DatabaseError):
            database.close()


@app.task(name="portal.ping_task", ignore_result=False)
def ping_task() -> str:
    """A no-op round trip through the broker: `celery -A portal call portal.ping_task`."""
    return "pong"
