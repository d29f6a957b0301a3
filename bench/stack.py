"""The production stack on loopback for the benchmark: gunicorn (production settings plus the
reference view) and Celery workers on Redis, one group for the workflow queue and one for the
bulk queues, as docs/deploy.md runs them. Each process runs in a session of its own and is
stopped by its process group id."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
from kombu.utils.json import loads

BASE_DIR = Path(__file__).resolve().parent.parent
BIN = BASE_DIR / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# (name, queues, concurrency) of each Celery worker. Two cores: the workflow gets two processes
# of its own, so the checks never wait behind the alert evaluations an ingest enqueues; the bulk
# queues (alerts, delivery, and the default queue) share one.
WORKER_GROUPS = (
    ("workflow", ("workflow",), 2),
    ("bulk", ("alerts", "delivery", "celery"), 1),
)


@dataclass
class Idle:
    """The outcome of waiting for the broker to be idle: how long it took, and what was still
    queued or running (by queue) if the wait gave up."""

    seconds: float
    left: dict[str, dict[str, int]]

    @property
    def note(self) -> str:
        if not self.left:
            return f"queues idle after {self.seconds:.0f} s"
        busy = ", ".join(
            f"{name} {counts['queued']} queued / {counts['running']} running"
            for name, counts in self.left.items()
        )
        return f"after {self.seconds:.0f} s still {busy}"


def broker_state(client: redis.Redis, queues: list[str]) -> dict[str, dict[str, int]]:
    """Per queue: messages waiting (the Redis list named after the queue) and messages delivered
    to a worker but not yet acknowledged (running or reserved: tasks acknowledge late), which
    kombu keeps in the ``unacked`` hash as [message, exchange, routing key]."""
    state = {name: {"queued": client.llen(name), "running": 0} for name in queues}
    for raw in client.hvals("unacked"):
        _, exchange, routing_key = loads(raw)
        name = routing_key or exchange
        if name in state:
            state[name]["running"] += 1
    return state


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    # With the children this process has reaped (a Celery pool child that was replaced, say).
    return times.user + times.system + times.children_user + times.children_system


@dataclass
class Stack:
    env: dict[str, str]
    log_dir: Path
    # As docs/deploy.md runs production: gthread workers (one per core here), so a worker keeps
    # its core busy with another request while one waits on PostgreSQL or Redis.
    web_workers: int = 2
    web_threads: int = 4
    worker_groups: tuple = WORKER_GROUPS
    port: int = 0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, command: list[str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        self.processes[name] = subprocess.Popen(  # noqa: S603 (our own venv binaries)
            command,
            cwd=BASE_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start(self) -> None:
        self.port = free_port()
        self._spawn(
            "web",
            [
                str(BIN / "gunicorn"),
                "portal.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.web_workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(self.web_threads),
                "--timeout",
                "600",
                "--forwarded-allow-ips",
                "127.0.0.1",
                # A control socket of its own (the default path is shared by every gunicorn).
                "--control-socket",
                str(self.log_dir / "gunicorn.ctl"),
            ],
        )
        for name, command in self.worker_commands().items():
            self._spawn(name, command)
        self._wait_ready()

    def worker_commands(self) -> dict[str, list[str]]:
        return {
            f"worker-{name}": [
                str(BIN / "celery"),
                "-A",
                "portal",
                "worker",
                "-Q",
                ",".join(queues),
                "--hostname",
                f"{name}@bench-{os.getpid()}",
                "--loglevel",
                "WARNING",
                "--concurrency",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
            for name, queues, concurrency in self.worker_groups
        }

    def queues(self) -> list[str]:
        return [queue for _, queues, _ in self.worker_groups for queue in queues]

    def broker_wait_idle(self, *, timeout: float, interval: float = 0.5) -> Idle:
        """Wait until no queue holds a message and no task is running or reserved, for at most
        ``timeout`` seconds, so that a figure does not measure the previous one's leftovers."""
        client = redis.Redis.from_url(self.env["CELERY_BROKER_URL"])
        started = time.monotonic()
        try:
            while True:
                state = broker_state(client, self.queues())
                busy = {name: c for name, c in state.items() if c["queued"] or c["running"]}
                waited = time.monotonic() - started
                if not busy or waited >= timeout:
                    return Idle(seconds=waited, left=busy)
                time.sleep(interval)
        finally:
            client.close()

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited; see {self.log_dir / name}.log")
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"The web server did not answer /healthz; see {self.log_dir}")

    def web_worker_rss(self) -> dict[int, int]:
        """Resident memory (bytes) of each gunicorn worker, by pid."""
        master = psutil.Process(self.processes["web"].pid)
        sizes = {}
        for child in master.children():
            try:
                sizes[child.pid] = child.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return sizes

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system, seconds) spent so far by each part of the stack: the web
        server, each worker group (each a process tree), the PostgreSQL backends serving their
        connections (``backend_cpu_seconds``) and the Redis server (shared with whatever else
        uses it). A process that exited meanwhile counts once its parent has reaped it."""
        spent, ports = self._process_cpu_and_ports()
        spent["postgresql"] = sum(self.backend_cpu_seconds(ports).values())
        spent["redis"] = sum(
            _cpu(process)
            for process in psutil.process_iter(["name"])
            if (process.info["name"] or "").startswith("redis-server")
        )
        return spent

    def backend_cpu_seconds(self, ports: set[int] | None = None) -> dict[int, float]:
        """CPU time of each PostgreSQL backend serving one of the stack's connections (found by
        the client port in its title, so that other clients of the server do not count), by
        pid. A backend whose connection closed is gone from the next reading: compare readings
        pid by pid."""
        if ports is None:
            ports = self._process_cpu_and_ports()[1]
        title = re.compile(r"\((\d+)\)")
        backends = {}
        for process in psutil.process_iter(["name", "cmdline"]):
            if not (process.info["name"] or "").startswith("postgres"):
                continue
            client = title.search(" ".join(process.info["cmdline"] or ()))
            if client and int(client.group(1)) in ports:
                backends[process.pid] = _cpu(process)
        return backends

    def _process_cpu_and_ports(self) -> tuple[dict[str, float], set[int]]:
        spent: dict[str, float] = {}
        ports: set[int] = set()
        for name, process in self.processes.items():
            group = "web" if name == "web" else name.removeprefix("worker-")
            spent[group] = 0.0
            try:
                root = psutil.Process(process.pid)
                members = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for member in members:
                spent[group] += _cpu(member)
                try:
                    ports.update(c.laddr.port for c in member.net_connections(kind="tcp"))
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
        return spent, ports

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()
