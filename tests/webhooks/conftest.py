"""A real HTTP receiver on 127.0.0.1 (a thread), allow-listed, and endpoints pointing at it."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import Role
from portal.celery import app as celery_app
from tests.api.conftest import east, h100, pool  # noqa: F401  (fixtures reused here)
from tests.conftest import make_member
from webhooks.services import webhook_endpoint_create

DOC = Path(settings.BASE_DIR) / "docs" / "webhooks.md"


def documented_verify():
    """The ``verify_webhook`` function exactly as docs/webhooks.md shows it."""
    match = re.search(r"<!-- verify_webhook.py -->\s*```python\n(.*?)```", DOC.read_text(), re.S)
    assert match, "docs/webhooks.md lost its verify function"
    namespace: dict = {}
    exec(compile(match.group(1), str(DOC), "exec"), namespace)
    return namespace["verify_webhook"]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next scripted status (then ``default_status``)."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    default_status: int = 200
    received: list[Received] = field(default_factory=list)
    verify_with: tuple | None = None  # (verify function, secret): checked on each request
    verified: list[bool] = field(default_factory=list)
    delay: float = 0.0  # seconds before answering


@pytest.fixture
def receiver():
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.received.append(Received(self.path, dict(self.headers.items()), body))
            if state.verify_with is not None:
                verify, secret = state.verify_with
                state.verified.append(
                    verify(secret, body, self.headers.get("Portal-Signature", ""))
                )
            status = state.statuses.pop(0) if state.statuses else state.default_status
            time.sleep(state.delay)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/portal"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _local_receiver_allowed(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.WEBHOOK_TIMEOUT_SECONDS = 2


@pytest.fixture
def admin(org):
    return make_member(org, Role.ADMIN, email="admin@acme.example")


@pytest.fixture
def endpoint(org, owner, receiver):
    return webhook_endpoint_create(
        organization=org,
        actor=owner,
        url=receiver.url,
        events=["request.approved", "request.submitted", "reservation.active"],
        description="CI",
    )


@pytest.fixture
def eager_celery():
    """Tasks enqueued by the code under test run at once, as a worker would run them."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False
