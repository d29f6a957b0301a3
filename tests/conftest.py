import shutil
from pathlib import Path

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from django.core.cache import cache

from accounts.models import Role, StaffRole

from .factories import MembershipFactory, OrganizationFactory, UserFactory


@pytest.fixture(scope="session", autouse=True)
def _empty_test_broker():
    """Start each session with an empty broker folder of its own (see settings/test.py)."""
    from django.conf import settings

    folder = getattr(settings, "TEST_BROKER_DIR", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        for key in ("data_folder_in", "processed_folder", "control_folder"):
            Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key]).mkdir(parents=True, exist_ok=True)
    yield


@pytest.fixture(autouse=True)
def _isolated_cache():
    """Rate-limit and throttle counters must not leak between tests (keys carry the worker)."""
    cache.delete_pattern("*") if hasattr(cache, "delete_pattern") else cache.clear()
    yield


@pytest.fixture(autouse=True)
def _api_throttling_off(settings):
    """API throttles are off except in the tests that switch them on to test them."""
    settings.API_THROTTLE_ENABLED = False


@pytest.fixture
def org(db):
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def other_org(db):
    return OrganizationFactory(name="Globex", slug="globex")


def make_member(organization, role=Role.MEMBER, **user_kwargs):
    return MembershipFactory(
        organization=organization, role=role, user=UserFactory(**user_kwargs)
    ).user


@pytest.fixture
def owner(org):
    return make_member(org, Role.OWNER, email="owner@acme.example")


@pytest.fixture
def member(org):
    return make_member(org, Role.MEMBER, email="dev@acme.example")


@pytest.fixture
def other_owner(other_org):
    return make_member(other_org, Role.OWNER, email="owner@globex.example")


def enable_totp(user, secret="JBSWY3DPEHPK3PXP"):
    TOTP.activate(user, secret)
    return Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)


@pytest.fixture
def account_manager(db, org):
    user = UserFactory(email="manager@provider.example", staff_role=StaffRole.ACCOUNT_MANAGER)
    enable_totp(user)
    org.account_manager = user
    org.save()
    return user


@pytest.fixture
def capacity_planner(db):
    user = UserFactory(email="planner@provider.example", staff_role=StaffRole.CAPACITY_PLANNER)
    enable_totp(user)
    return user
