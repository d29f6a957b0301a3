"""The endpoints an event is published to are read by a written-out statement: the same
endpoints, in the same order and with the same fields, as the ORM query it replaced."""

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from webhooks.events import EVENT_TYPES
from webhooks.models import WebhookEndpoint
from webhooks.selectors import webhook_endpoints_listening

pytestmark = pytest.mark.django_db


def _values(endpoint: WebhookEndpoint) -> dict:
    return {f.attname: getattr(endpoint, f.attname) for f in endpoint._meta.concrete_fields}


def test_listening_endpoints_equal_the_orm_query(org, other_org, owner):
    rng = random.Random(3)
    types = sorted(EVENT_TYPES)
    for n in range(24):
        WebhookEndpoint.all_objects.create(
            organization=rng.choice([org, other_org]),
            url=f"https://hooks.example/{n}",
            events=rng.sample(types, rng.randint(0, 4)),
            secret=f"s{n}",
            enabled=rng.random() < 0.7,
            created_by=owner,
        )
    listened = 0
    for organization in (org, other_org):
        for event_type in types:
            expected = list(
                WebhookEndpoint.objects.for_organization(organization)
                .filter(enabled=True, events__contains=[event_type])
                .order_by("id")
            )
            with CaptureQueriesContext(connection) as queries:
                found = webhook_endpoints_listening(
                    organization=organization, event_type=event_type
                )
            assert len(queries.captured_queries) == 1
            assert [_values(e) for e in found] == [_values(e) for e in expected]
            listened += len(found)
    assert listened > 10
