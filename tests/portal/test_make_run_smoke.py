"""`make run`'s default path works: embedded PostgreSQL, filesystem broker, the Procfile's web
server and worker. Uses the helpers and the Procfile that scripts/run.py uses."""

import contextlib
import importlib.util
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from celery import Celery

from .conftest import BASE_DIR, closed_loopback_port


def run_script():
    spec = importlib.util.spec_from_file_location(
        "portal_run_script", BASE_DIR / "scripts" / "run.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def http_get(url: str, *, timeout: float) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def process_start(command: str, *, env: dict, log: Path) -> subprocess.Popen:
    # A session of its own, so the process and its children stop together.
    return subprocess.Popen(
        command,
        shell=True,
        env=env,
        cwd=BASE_DIR,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def process_stop(process: subprocess.Popen) -> None:
    """Stop the whole process group, not only the shell: a Celery worker outlives its shell and,
    left behind, keeps polling its broker folder for ever."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


@pytest.mark.slow
def test_make_run_serves_the_login_page_and_runs_tasks(tmp_path):
    run = run_script()
    var_dir = tmp_path / "var"
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    port = closed_loopback_port()
    processes: list[subprocess.Popen] = []

    server, database_url = run.embedded_database_start(tmp_path / "pgdata")
    try:
        env = run.process_env(
            database_url=database_url,
            port=port,
            extra={
                "DJANGO_SETTINGS_MODULE": "portal.settings.base",
                "PORTAL_VAR_DIR": str(var_dir),
                "CELERY_RESULT_BACKEND": f"file://{results_dir}",
            },
        )
        for name in ("CELERY_BROKER_URL", "REDIS_URL", "PYTEST_XDIST_WORKER"):
            env.pop(name, None)
        run.manage("migrate", "--noinput", env=env)
        commands = run.procfile_processes()
        assert set(commands) == {"web", "worker", "beat"}
        for name in ("web", "worker"):
            processes.append(process_start(commands[name], env=env, log=tmp_path / f"{name}.log"))

        status, body = http_get(f"http://127.0.0.1:{port}/accounts/login/", timeout=45)
        assert status == 200
        assert 'name="login"' in body
        assert 'name="password"' in body
        assert 'method="post"' in body

        status, body = http_get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert (status, body) == (200, '{"status": "ok", "database": "ok", "broker": "ok"}')

        broker_dir = var_dir / "broker"
        client = Celery("smoke", broker="filesystem://", backend=f"file://{results_dir}")
        client.conf.broker_transport_options = {
            "data_folder_in": str(broker_dir / "queue"),
            "data_folder_out": str(broker_dir / "queue"),
            "processed_folder": str(broker_dir / "processed"),
            "control_folder": str(broker_dir / "control"),
        }
        result = client.send_task("portal.ping_task")
        assert result.get(timeout=30) == "pong"
    finally:
        for process in processes:
            process_stop(process)
        run.embedded_database_stop(server)
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
