import pytest
from rest_framework.test import APIClient

from accounts.apikeys import api_key_create_for_organization, api_key_create_for_provider
from accounts.models import Role

from ..conftest import make_member
from ..factories import UserFactory


@pytest.fixture
def api():
    return APIClient()


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def admin(org):
    return make_member(org, Role.ADMIN, email="admin@acme.example")


@pytest.fixture
def org_key(org, owner):
    return api_key_create_for_organization(
        organization=org, name="ci", scopes=["read", "write"], created_by=owner
    )


@pytest.fixture
def read_key(org, owner):
    return api_key_create_for_organization(
        organization=org, name="dashboards", scopes=["read"], created_by=owner
    )


@pytest.fixture
def other_org_key(other_org, other_owner):
    return api_key_create_for_organization(
        organization=other_org, name="globex ci", scopes=["read", "write"], created_by=other_owner
    )


@pytest.fixture
def superuser(db):
    return UserFactory(email="root@provider.example", is_superuser=True, is_staff=True)


@pytest.fixture
def ingest_key(superuser):
    return api_key_create_for_provider(
        name="metering", scopes=["usage:ingest"], created_by=superuser
    )


@pytest.fixture
def approvals_key(superuser):
    return api_key_create_for_provider(
        name="approver bot", scopes=["approvals"], created_by=superuser
    )


@pytest.fixture
def owner_api(owner):
    client = APIClient()
    client.force_login(owner)
    return client


@pytest.fixture
def member_api(member):
    client = APIClient()
    client.force_login(member)
    return client
