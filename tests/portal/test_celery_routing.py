"""Which queue each task goes to, and that every place that starts a worker consumes the queues
it must. The real-worker proof (checks done while alerts sit queued) is the fault scenario
tests/faults/test_queue_isolation.py."""

import re
import shlex

import pytest

from portal.celery import app, queue_names

from .conftest import BASE_DIR

# The decision, written out: a new task fails test_every_task_has_a_queue_chosen until it is
# routed in CELERY_TASK_ROUTES and listed here.
EXPECTED_QUEUE = {
    # The request lifecycle: a tenant waits on these.
    "quotas.run_checks_task": "workflow",
    "quotas.waitlist_offer_task": "workflow",
    "quotas.reservations_due_task": "workflow",
    "quotas.requests_expiry_task": "workflow",
    "quotas.requests_due_task": "workflow",
    "quotas.waitlist_scan_task": "workflow",
    "quotas.requests_sweep_task": "workflow",
    "portal.ping_task": "workflow",
    # Bulk evaluations: hundreds after one large usage ingest.
    "contracts.contract_spend_alerts_task": "alerts",
    "contracts.spend_alerts_scan_task": "alerts",
    "contracts.quota_alerts_task": "alerts",
    "contracts.usage_ingest_alerts_task": "alerts",
    "contracts.quota_alerts_scan_task": "alerts",
    "contracts.statement_issue_task": "alerts",
    "contracts.statements_close_task": "alerts",
    # Talking to the outside world: SMTP relays and customer endpoints can be slow.
    "notifications.send_email_task": "delivery",
    "notifications.email_sweep_task": "delivery",
    "notifications.send_digest_task": "delivery",
    "notifications.daily_digest_task": "delivery",
    "webhooks.deliver_task": "delivery",
    "webhooks.deliveries_due_scan_task": "delivery",
    # Housekeeping, on the default queue.
    "accounts.idempotency_records_purge_task": "celery",
}


def routed_queue(task_name: str) -> str:
    """The queue the app publishes ``task_name`` to, as `delay()`, `send_task` and beat do."""
    return app.amqp.router.route({}, task_name)["queue"].name


def portal_tasks() -> set[str]:
    app.loader.import_default_modules()
    return {name for name in app.tasks if not name.startswith("celery.")}


def queues_option(command: str) -> list[str]:
    """The queues of a `celery ... worker` command's `-Q` / `--queues` option."""
    argv = shlex.split(command)
    for index, arg in enumerate(argv):
        if arg in ("-Q", "--queues"):
            return argv[index + 1].split(",")
        if arg.startswith("--queues="):
            return arg.split("=", 1)[1].split(",")
    raise AssertionError(f"no -Q in {command!r}")


def test_every_task_has_a_queue_chosen():
    assert portal_tasks() == set(EXPECTED_QUEUE)


@pytest.mark.parametrize("task_name", sorted(EXPECTED_QUEUE))
def test_task_is_published_to_the_queue_of_its_kind(task_name):
    assert routed_queue(task_name) == EXPECTED_QUEUE[task_name]


def test_each_queue_is_bound_to_its_own_name():
    """On Redis a queue is a list named after it; a queue bound with another routing key would
    receive tasks meant for another queue."""
    for queue in app.conf.task_queues:
        assert (queue.exchange.name, queue.routing_key) == (queue.name, queue.name)


def test_an_unrouted_task_goes_to_the_default_queue_which_is_declared():
    assert routed_queue("portal.some_future_task") == app.conf.task_default_queue == "celery"
    assert "celery" in queue_names()


def test_queue_names_are_the_routed_queues_and_the_default():
    routed = {route["queue"] for route in app.conf.task_routes.values()}
    assert set(queue_names()) == routed | {app.conf.task_default_queue}
    assert set(queue_names()) == {"workflow", "alerts", "delivery", "celery"}


def test_a_worker_started_without_queues_consumes_every_queue():
    assert set(app.amqp.queues.consume_from) == set(queue_names())


def test_the_procfile_worker_consumes_every_queue_a_task_is_routed_to():
    from honcho.environ import parse_procfile

    processes = parse_procfile((BASE_DIR / "Procfile").read_text()).processes
    workers = [command for command in processes.values() if " worker" in command]
    assert workers, "the Procfile starts a Celery worker"
    consumed = {queue for command in workers for queue in queues_option(command)}
    assert consumed == set(queue_names())
    assert set(EXPECTED_QUEUE.values()) <= consumed


def test_the_deploy_guide_runs_a_worker_for_every_queue():
    """docs/deploy.md's process table: its worker rows together consume every queue, and name
    no queue that does not exist."""
    text = (BASE_DIR / "docs" / "deploy.md").read_text()
    commands = re.findall(r"^\| worker[^|]*\| `(celery -A portal worker [^`]*)`", text, re.M)
    assert len(commands) >= 2, "a worker per queue group"
    consumed = [queue for command in commands for queue in queues_option(command)]
    assert set(consumed) == set(queue_names())
    assert len(consumed) == len(set(consumed)), "each queue has one group of workers"
