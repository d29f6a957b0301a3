"""docs/api.md's Python walkthrough, run as it is written against a live test server."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from accounts.apikeys import api_key_create_for_organization
from accounts.models import AuditEvent
from portal.celery import app as celery_app
from quotas.models import CapacityRequest, Reservation
from quotas.services import approval_policy_set

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DOC = Path(settings.BASE_DIR) / "docs" / "api.md"


def walkthrough_code(name: str = "walkthrough.py") -> str:
    pattern = rf"<!-- {re.escape(name)} -->\s*```python\n(.*?)```"
    match = re.search(pattern, DOC.read_text(), re.S)
    assert match, f"docs/api.md lost its Python walkthrough {name}"
    return match.group(1)


@pytest.fixture
def eager_celery():
    """The checks task runs when the request commits, as a worker would run it at once."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_python_walkthrough_reserves_gpus(
    live_server, org, owner, pool, account_manager, eager_celery, tmp_path
):
    approval_policy_set(
        organization=org,
        actor=account_manager,
        auto_approve_max_gpus=64,
        auto_approve_max_value="1000000",
    )
    key = api_key_create_for_organization(
        organization=org, name="walkthrough", scopes=["read", "write"], created_by=owner
    ).key
    script = tmp_path / "walkthrough.py"
    script.write_text(walkthrough_code())
    env = {
        **os.environ,
        "PORTAL": live_server.url,
        "PORTAL_API_KEY": key,
        "PORTAL_SKU": "h100-sxm",
        "PORTAL_REGION": "us-east-1",
        "PORTAL_GPUS": "16",
        "PORTAL_POLL_SECONDS": "0.2",
        "PORTAL_WAIT_SECONDS": "20",
    }
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(contract price)" in result.stdout
    assert "check capacity: pass" in result.stdout
    assert re.search(r"REQ-\d+ is approved", result.stdout)
    assert "quota h100-sxm in us-east-1: 16 GPUs (16 reserved, 0 on demand)" in result.stdout
    capacity_request = CapacityRequest.objects.for_organization(org).get()
    assert Reservation.objects.for_organization(org).get().request == capacity_request


def test_python_walkthrough_waits_for_the_decision_by_webhook(
    live_server, org, owner, pool, account_manager, eager_celery, tmp_path, settings
):
    """The variant that registers its own receiver as a webhook endpoint and waits for the
    signed request event instead of polling (a loopback receiver, allow-listed as in
    development)."""
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    approval_policy_set(
        organization=org,
        actor=account_manager,
        auto_approve_max_gpus=64,
        auto_approve_max_value="1000000",
    )
    key = api_key_create_for_organization(
        organization=org, name="walkthrough", scopes=["read", "write"], created_by=owner
    ).key
    script = tmp_path / "walkthrough_webhook.py"
    script.write_text(walkthrough_code("walkthrough_webhook.py"))
    env = {
        **os.environ,
        "PORTAL": live_server.url,
        "PORTAL_API_KEY": key,
        "PORTAL_SKU": "h100-sxm",
        "PORTAL_REGION": "us-east-1",
        "PORTAL_GPUS": "16",
        "PORTAL_WAIT_SECONDS": "20",
    }
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "event request.approved (signature verified)" in result.stdout, output
    assert "no event in time" not in result.stdout  # the webhook, not the fallback poll
    assert "bad signature" not in result.stdout
    assert "check capacity: pass" in result.stdout
    assert re.search(r"REQ-\d+ is approved", result.stdout)
    capacity_request = CapacityRequest.objects.for_organization(org).get()
    assert capacity_request.state == "approved"
    actions = list(
        AuditEvent.objects.for_organization(org)
        .filter(action__startswith="webhook.")
        .values_list("action", flat=True)
        .order_by("id")
    )
    assert actions == ["webhook.created", "webhook.deleted"]  # it cleans up after itself
