"""The benchmark's Celery workers, its wait for an idle broker, and its R2 reference."""

import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from unittest import mock

import psutil
import pytest
import redis
from celery import Celery
from django.db import connection

from bench.run import R2_BATCH_ROWS, Bench, arguments, cpu_note
from bench.stack import Stack
from portal.celery import app, queue_names
from tests.factories import GpuSkuFactory, OrganizationFactory, RegionFactory
from usage.models import UsageRecord


def queues_of(command: list[str]) -> list[str]:
    return command[command.index("-Q") + 1].split(",")


def test_bench_workers_consume_every_queue_and_the_workflow_has_its_own(tmp_path):
    commands = Stack(env={}, log_dir=tmp_path).worker_commands()
    consumed = [queue for command in commands.values() for queue in queues_of(command)]
    assert sorted(consumed) == sorted(queue_names())
    (workflow,) = [c for c in commands.values() if "workflow" in queues_of(c)]
    assert queues_of(workflow) == ["workflow"]


@pytest.fixture
def private_redis(tmp_path):
    """A Redis of the test's own on a free loopback port, with no persistence."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/1"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.05)
    yield url
    client.close()
    server.terminate()
    server.wait(timeout=10)


def test_waiting_for_the_broker_sees_queued_and_running_tasks_per_queue(private_redis, tmp_path):
    publisher = Celery("bench-test", broker=private_redis, set_as_current=False)
    publisher.conf.update(
        task_queues=app.conf.task_queues,
        task_default_queue=app.conf.task_default_queue,
        task_routes=app.conf.task_routes,
    )
    for _ in range(2):
        publisher.send_task("portal.ping_task")
    for organization_id in (1, 2, 3):
        publisher.send_task("contracts.quota_alerts_task", args=[organization_id])
    stack = Stack(env={"CELERY_BROKER_URL": private_redis}, log_dir=tmp_path)

    with publisher.connection_for_read() as conn:
        # As a worker takes a task: delivered, not acknowledged until it is done (acks_late).
        running = conn.default_channel.basic_get("workflow", no_ack=False)
        assert running is not None
        busy = stack.broker_wait_idle(timeout=0.3, interval=0.1)
        assert busy.left == {
            "workflow": {"queued": 1, "running": 1},
            "alerts": {"queued": 3, "running": 0},
        }
        assert busy.seconds >= 0.3
        assert "workflow 1 queued / 1 running" in busy.note

        running.ack()
        for queue in ("workflow", "alerts"):
            while conn.default_channel.basic_get(queue, no_ack=True) is not None:
                pass
    idle = stack.broker_wait_idle(timeout=5, interval=0.1)
    assert idle.left == {}
    assert idle.seconds < 5
    assert idle.note.startswith("queues idle after")
    publisher.close()


def test_r2_commits_each_batch_of_a_thousand_then_deletes_its_rows(transactional_db, tmp_path):
    OrganizationFactory(slug="org-00001")
    GpuSkuFactory(code="h100-sxm")
    RegionFactory(code="dc-01")
    rows = 2 * R2_BATCH_ROWS + 500
    start = datetime(2026, 1, 1, tzinfo=UTC)
    batch = tmp_path / "batch.csv"
    batch.write_text(
        "organization,sku,region,hour,gpu_hours,mean_utilization\n"
        + "".join(
            f"org-00001,h100-sxm,dc-01,{start + timedelta(hours=i):%Y-%m-%dT%H:00:00Z},8.0000,"
            "0.5000\n"
            for i in range(rows)
        )
    )
    bench = Bench(arguments(["--quick"]), env={}, run_dir=tmp_path)

    with mock.patch.object(connection, "commit", wraps=connection.commit) as commit:
        rate = bench._bulk_create_reference(batch)

    assert rate > 0
    assert commit.call_count == 3, "one commit per 1,000-row bulk_create"
    assert not UsageRecord.all_objects.exists()


def test_stack_cpu_reading_counts_each_process_tree_and_its_own_backends(db, tmp_path):
    burn = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"
    dsn = " ".join(
        f"{key}={value}"
        for key, value in (
            ("host", connection.settings_dict["HOST"] or "127.0.0.1"),
            ("port", connection.settings_dict["PORT"] or 5432),
            ("user", connection.settings_dict["USER"]),
            ("dbname", connection.settings_dict["NAME"]),
        )
    )
    # A worker group whose CPU is spent by children, as Celery's pool does: one that burns and
    # exits (counted through its parent once reaped), one that burns and stays; then the group
    # runs a query over its own connection and keeps it open.
    script = (
        "import subprocess, sys, time, psycopg\n"
        "time.sleep(0.5)\n"
        f"subprocess.run([sys.executable, '-c', {burn!r}])\n"
        f"subprocess.Popen([sys.executable, '-c', {burn + 'time.sleep(60)'!r}])\n"
        f"conn = psycopg.connect({dsn!r})\n"
        "conn.execute('SELECT count(*) FROM generate_series(1, 1000000)').fetchone()\n"
        "print('queried', flush=True)\n"
        "time.sleep(60)\n"
    )
    stack = Stack(env={}, log_dir=tmp_path)
    group = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    stack.processes["worker-workflow"] = group
    try:
        before = stack.cpu_seconds()
        # Another client of the same server: its backend is not the stack's.
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM generate_series(1, 10000000)")
        assert group.stdout.readline().strip() == "queried"
        deadline = time.monotonic() + 20
        while True:
            after = stack.cpu_seconds()
            if after["workflow"] - before["workflow"] >= 0.75 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        backends = stack.backend_cpu_seconds()
    finally:
        for child in psutil.Process(group.pid).children(recursive=True):
            child.kill()
        group.kill()
        group.wait()
    assert set(after) == {"workflow", "postgresql", "redis"}
    assert len(backends) == 1  # the group's one connection, not the test's
    assert 0.75 <= after["workflow"] - before["workflow"] < 3
    # The group's query (about a tenth of the other client's) and nothing of the other's.
    assert 0.02 < after["postgresql"] - before["postgresql"] < 0.5


def test_cpu_note_gives_milliseconds_per_unit_largest_first():
    note = cpu_note({"web": 0.5, "workflow": 1.0, "redis": 0.0}, 100, "submission")
    assert note == "CPU ms per submission: workflow 10.0, web 5.0, redis 0.0"
    assert cpu_note({"web": 1.0}, 0, "submission") == ""


def test_cpu_spent_compares_backends_pid_by_pid(tmp_path):
    """A backend whose connection closed during a figure (CONN_MAX_AGE) must not take its past
    CPU out of the figure's: the sum once went negative that way."""

    class Readings:
        def __init__(self):
            self.groups = iter([{"web": 1.0, "postgresql": 5.0}, {"web": 1.5, "postgresql": 3.5}])
            self.backends = iter([{10: 3.0, 11: 2.0}, {11: 2.5, 12: 1.0}])

        def cpu_seconds(self):
            return next(self.groups)

        def backend_cpu_seconds(self):
            return next(self.backends)

    bench = Bench(arguments([]), env={}, run_dir=tmp_path)
    bench.stack = Readings()
    with bench.cpu_spent() as spent:
        pass
    assert spent["web"] == pytest.approx(0.5)
    assert spent["postgresql"] == pytest.approx(1.5)  # 0.5 by the backend that stayed, 1.0 new
    assert spent["locust"] >= 0
