"""Schemathesis over the OpenAPI document: generated requests to every operation, with valid
credentials, never make the server fail and always get the documented response shape.

Fixed seed and a bounded number of examples per operation, so the run is repeatable and fast.
"""

import json
from contextlib import contextmanager

import pytest
import schemathesis
from django.core.signals import request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from contracts.models import Contract
from notifications.models import Notification
from webhooks.services import webhook_endpoint_create

from .conftest import bearer  # noqa: F401  (the same credentials as the other API tests)

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

EXAMPLES_PER_OPERATION = 5


@contextmanager
def _connections_kept():
    """Like Django's test client: a request must not close the test's open transaction."""
    request_started.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)


def _load_schema():
    """The document drf-spectacular serves at /api/v1/schema/, generated in process."""
    document = json.loads(
        OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True))
    )
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = get_wsgi_application()
    # The docs views serve HTML and JavaScript, not the API.
    return loaded.exclude(path_regex=r"^/api/v1/(schema|docs)/")


schema = _load_schema()


@pytest.fixture
def world(org, owner, member, org_key, approvals_key, pending_request, reservation):
    """Real objects for the generated paths to name, and a key for each side."""
    with _connections_kept():
        yield {
            "org_key": org_key.key,
            "approvals_key": approvals_key.key,
            "ids": {
                "requests": pending_request.pk,
                "reservations": reservation.pk,
                "contracts": Contract.objects.for_organization(org).get().pk,
                "notifications": Notification.objects.create(
                    recipient=owner,
                    organization=org,
                    event="request.approved",
                    title="REQ-1 is approved",
                    dedupe_key="schemathesis",
                ).pk,
                "webhooks": webhook_endpoint_create(
                    organization=org,
                    actor=owner,
                    url="https://hooks.acme.example/portal",
                    events=["request.approved"],
                ).pk,
            },
        }


def _aim(case, world):
    """Point the generated path at acme and, half the time, at an object that exists."""
    params = dict(case.path_parameters or {})
    if "org_slug" in params:
        params["org_slug"] = "acme"
    if "code" in params and "/regions/" in case.path:
        params["code"] = "us-east-1"
    if "code" in params and "/skus/" in case.path:
        params["code"] = "h100-sxm"
    for resource, pk in world["ids"].items():
        if "id" in params and f"/{resource}/" in case.path and hash(str(params["id"])) % 2:
            params["id"] = pk
    case.path_parameters = params


@schema.parametrize()
@seed(20261125)
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_never_fails_and_conforms_to_its_schema(case, world):
    _aim(case, world)
    key = world["approvals_key"] if case.path.startswith("/api/v1/staff/") else world["org_key"]
    case.call_and_validate(
        headers={"Authorization": f"Bearer {key}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
