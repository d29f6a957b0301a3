"""The role every tenant action asks for is the written-out statement's: the ORM's answer on
random memberships, in one query."""

import random

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Membership, Organization, Role
from accounts.tenancy import UnscopedQueryError
from quotas.services._base import tenant_role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def _orm_role(user, organization):
    if user is None or not user.is_authenticated:
        return None
    membership = (
        Membership.objects.for_organization(organization).filter(user=user).only("role").first()
    )
    return membership.role if membership else None


def test_role_is_what_the_orm_reads():
    rng = random.Random(7)
    organizations = [OrganizationFactory() for _ in range(3)]
    users = [UserFactory(is_active=rng.random() < 0.8) for _ in range(8)]
    for user in users:
        for organization in rng.sample(organizations, rng.randint(0, 3)):
            MembershipFactory(organization=organization, user=user, role=rng.choice(list(Role)))
    roles = set()
    for user in [*users, None, AnonymousUser()]:
        for organization in organizations:
            with CaptureQueriesContext(connection) as queries:
                role = tenant_role(user, organization)
            assert role == _orm_role(user, organization)
            assert len(queries.captured_queries) == (1 if user and user.is_authenticated else 0)
            roles.add(role)
    assert None in roles and len(roles) > 3


def test_an_unsaved_organization_is_refused_as_the_orm_refused_it(member):
    with pytest.raises(UnscopedQueryError):
        tenant_role(member, Organization(name="Unsaved", slug="unsaved"))
