"""Processes of the fault scenarios: a Redis of their own, gunicorn and Celery workers on free
loopback ports, against the test database; every process is stopped at the end, also on failure.

Sizes: the bounded variants run inside `make test`; `make faults` sets FAULTS_FULL=1.
"""

from __future__ import annotations

import contextlib
import email
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from celery import Celery

from portal.celery import app, queue_names

BASE_DIR = Path(__file__).resolve().parent.parent.parent
FULL = os.environ.get("FAULTS_FULL", "") not in ("", "0")
# Loaded machines are slow to start processes; every wait is on a condition, bounded by this.
SLOW = 2.0 if FULL else 1.0


def sized(bounded: int, full: int) -> int:
    return full if FULL else bounded


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.1
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout * SLOW:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def group_alive(self) -> bool:
        """Whether any process of its session (it and its children) still exists."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # fields: state ppid pgrp ...; a zombie no longer runs anything
            if int(fields[2]) == self.pid and fields[0] != "Z":
                return True
        return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole session (the process and its children) at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            self.kill(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        self.kill(signal.SIGKILL)
        if self.alive():
            self.popen.wait(timeout=10)


@dataclass
class Stack:
    """The processes of one scenario. Use as a context manager: everything stops on exit."""

    tmp: Path
    database: dict
    processes: list[Process] = field(default_factory=list)
    redis_port: int | None = None
    web_port: int | None = None
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(64))
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mail_dir = self.tmp / "mail"
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self.stopping = threading.Event()
        self.supervisors: list[threading.Thread] = []
        self.restarts: list[str] = []

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stopping.set()
        for thread in self.supervisors:
            thread.join(timeout=10)
        for process in reversed(self.processes):
            process.stop()
        if exc_type is not None:
            for process in self.processes:
                print(f"--- {process.name} ({process.log})\n{process.log_text()[-4000:]}")

    # --- environment -------------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        db = self.database
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/1"

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "PYTEST_", "CELERY_", "PORTAL_TEST", "QUOTAS_"))
            and key not in ("REDIS_URL", "DATABASE_URL")
        }
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "tests.faults.settings",
                "DJANGO_SECRET_KEY": self.secret_key,
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
                "DATABASE_URL": self.database_url,
                "PORTAL_VAR_DIR": str(self.tmp / "var"),
                "FAULTS_MAIL_DIR": str(self.mail_dir),
                "PYTHONUNBUFFERED": "1",
                "LOG_LEVEL": "INFO",
            }
        )
        if self.redis_port is not None:
            env["REDIS_URL"] = f"redis://127.0.0.1:{self.redis_port}/0"
            env["CELERY_BROKER_URL"] = self.broker_url
        env.update(self.extra_env)
        return env

    def _start(self, name: str, argv: list[str]) -> Process:
        log = self.tmp / f"{name}.log"
        popen = subprocess.Popen(
            argv,
            cwd=BASE_DIR,
            env=self.env(),
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so it dies with its children
        )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    # --- Redis ---------------------------------------------------------------------------------
    def redis_start(self) -> Process:
        """A Redis of the scenario's own, with no persistence: a restart loses what it held."""
        if self.redis_port is None:
            self.redis_port = free_port()
        data = self.tmp / "redis"
        data.mkdir(exist_ok=True)
        process = self._start(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data),
            ],
        )
        wait_for(self.redis_ping, timeout=15, what="Redis to answer PING")
        return process

    def redis_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def redis_stop(self, process: Process) -> None:
        process.stop()
        wait_for(lambda: not self.redis_ping(), timeout=10, what="Redis to stop")

    def broker_state(self) -> dict[str, Any]:
        """What the broker holds: queued messages and delivered-but-unacknowledged ones."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.redis_port, db=1)
        try:
            # Each queue is a Redis list named after it (CELERY_TASK_QUEUES).
            queues = {name: client.llen(name) for name in queue_names()}
            return {
                "keys": sorted(k.decode() for k in client.keys("*")),
                "queues": queues,
                "queued": sum(queues.values()),
                "unacked": client.hlen("unacked"),
            }
        finally:
            client.close()

    def broker_idle(self) -> bool:
        """No task queued and none delivered but unacknowledged."""
        state = self.broker_state()
        return state["queued"] == 0 and state["unacked"] == 0

    def task_send(self, name: str, *args: Any, times: int = 1) -> None:
        """Publish a task by name, ``times`` times, as beat or a web process would: to the
        queue the portal's routes choose for it."""
        # Not the current app: the test process's own tasks must keep their own broker.
        client = Celery("faults", broker=self.broker_url, set_as_current=False)
        client.conf.update(
            task_queues=app.conf.task_queues,
            task_default_queue=app.conf.task_default_queue,
            task_routes=app.conf.task_routes,
        )
        try:
            with client.producer_or_acquire() as producer:
                for _ in range(times):
                    client.send_task(name, args=list(args), producer=producer)
        finally:
            client.close()

    # --- Django processes ----------------------------------------------------------------------
    def web_start(self, *, workers: int = 1) -> Process:
        self.web_port = free_port()
        process = self._start(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "portal.wsgi",
                "--bind",
                f"127.0.0.1:{self.web_port}",
                "--workers",
                str(workers),
                "--timeout",
                "120",
                "--graceful-timeout",
                "5",
            ],
        )
        wait_for(self._web_answers, timeout=60, what="gunicorn to answer", interval=0.3)
        return process

    def _web_answers(self) -> bool:
        try:
            requests.get(self.url("/healthz"), timeout=2)
        except requests.RequestException:
            return False
        return True

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    def _worker_spawn(self, name: str, concurrency: int, queues: list[str] | None) -> Process:
        return self._start(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "-Q",
                ",".join(queues or queue_names()),
                "--loglevel",
                "INFO",
                "--concurrency",
                str(concurrency),
                "--hostname",
                f"{name}-{secrets.token_hex(3)}@faults",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
        )

    def worker_start(
        self, name: str = "worker", *, concurrency: int = 1, queues: list[str] | None = None
    ) -> Process:
        """A worker consuming ``queues`` (default: every queue, as the Procfile's worker)."""
        process = self._worker_spawn(name, concurrency, queues)
        wait_for(
            lambda: " ready." in process.log_text() or not process.alive(),
            timeout=60,
            what=f"the Celery {name} to be ready",
            interval=0.2,
        )
        assert process.alive(), process.log_text()[-3000:]
        return process

    def worker_supervise(
        self, name: str = "worker", *, concurrency: int = 1, queues: list[str] | None = None
    ) -> Process:
        """A worker restarted whenever it exits, as systemd (Restart=always) or Kubernetes
        would; each restart is recorded in ``restarts``."""
        process = self.worker_start(name, concurrency=concurrency, queues=queues)

        def watch(current: Process) -> None:
            while not self.stopping.wait(0.2):
                if not current.alive():
                    self.restarts.append(f"{current.name} exited {current.popen.returncode}")
                    current = self._worker_spawn(
                        f"{name}-{len(self.restarts) + 1}", concurrency, queues
                    )

        thread = threading.Thread(target=watch, args=(process,), daemon=True)
        thread.start()
        self.supervisors.append(thread)
        return process

    # --- e-mail ----------------------------------------------------------------------------------
    def mails(self) -> list[email.message.Message]:
        """Every e-mail the processes sent (the file backend appends each with a separator)."""
        separator = b"\n" + b"-" * 79 + b"\n"
        sent = []
        for path in sorted(self.mail_dir.glob("*.log")):
            for chunk in path.read_bytes().split(separator):
                if chunk.strip():
                    sent.append(email.message_from_bytes(chunk))
        return sent


def api_session(key: str) -> requests.Session:
    """An API client as a load balancer would forward it (TLS ended, X-Forwarded-Proto set)."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {key}", "X-Forwarded-Proto": "https"})
    return session
