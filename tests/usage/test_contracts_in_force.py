"""``contracts_in_force`` for organization ids reads a statement written once and prepared once
per connection: it returns what the ORM query it replaced returns (the queryset path)."""

import random
from datetime import date, timedelta

import pytest
from django.db import connection
from django.forms.models import model_to_dict

from accounts.models import Organization
from contracts.models import Contract
from tests.factories import ContractFactory, OrganizationFactory
from usage.fleet import contracts_in_force

pytestmark = pytest.mark.django_db

STATUSES = [str(status) for status in Contract.Status]


def _flat(in_force):
    return {
        org: [(model_to_dict(c), c.pk, c.organization_id, until) for c, until in rows]
        for org, rows in in_force.items()
    }


def test_the_prepared_read_equals_the_orm_read():
    rng = random.Random(7)
    orgs = [OrganizationFactory() for _ in range(4)]
    for _ in range(40):
        start = date(2024, 1, 1) + timedelta(days=rng.randrange(0, 900))
        ContractFactory(
            organization=rng.choice(orgs),
            status=rng.choice(STATUSES),
            term_start=start,
            term_end=start + timedelta(days=rng.choice([1, 30, 365, 700])),
        )
    for _ in range(60):
        chosen = rng.sample(orgs, rng.randrange(1, 5))
        start = date(2024, 1, 1) + timedelta(days=rng.randrange(-30, 1200))
        end = start + timedelta(days=rng.choice([0, 1, 31, 400]))
        ids = [org.pk for org in chosen]
        by_orm = contracts_in_force(
            organizations=Organization.objects.filter(pk__in=ids), start=start, end=end
        )
        assert _flat(contracts_in_force(organizations=ids, start=start, end=end)) == _flat(by_orm)
    assert contracts_in_force(organizations=[], start=date.min, end=date.max) == {}


def test_the_read_is_prepared_once_per_connection():
    org = OrganizationFactory()
    ContractFactory(organization=org)
    for days in (0, 10, 20):
        start = date(2025, 1, 1) + timedelta(days=days)
        assert contracts_in_force(organizations=[org.pk], start=start, end=date(2030, 1, 1))
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        reads = [row[0] for row in cursor.fetchall() if "contracts_contract" in row[0]]
    assert len(reads) == 1
