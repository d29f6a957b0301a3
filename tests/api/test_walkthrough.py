"""docs/api.md's Python walkthrough, run as it is written against a live test server."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from accounts.apikeys import api_key_create_for_organization
from portal.celery import app as celery_app
from quotas.models import CapacityRequest, Reservation
from quotas.services import approval_policy_set

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DOC = Path(settings.BASE_DIR) / "docs" / "api.md"


def walkthrough_code() -> str:
    match = re.search(r"<!-- walkthrough.py -->\s*```python\n(.*?)```", DOC.read_text(), re.S)
    assert match, "docs/api.md lost its Python walkthrough"
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
