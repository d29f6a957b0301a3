import re
import time

import pytest
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.apps import apps
from django.core import mail

from accounts.models import Role
from accounts.services import invitation_create
from tests.conftest import make_member

TOTP_SECRET = "JBSWY3DPEHPK3PXP"


def totp_code(secret: str = TOTP_SECRET) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


@pytest.fixture
def admin_user(org):
    return make_member(org, Role.ADMIN, email="admin@acme.example")


@pytest.fixture
def billing_user(org):
    return make_member(org, Role.BILLING, email="billing@acme.example")


@pytest.fixture
def viewer(org):
    return make_member(org, Role.VIEWER, email="viewer@acme.example")


@pytest.fixture
def pending_invitation(org, owner):
    return invitation_create(
        organization=org, email="invitee@example.com", role=Role.MEMBER, invited_by=owner
    )


def invitation_path_from_mail() -> str:
    """The invitation link of the last e-mail sent, as a path."""
    match = re.search(r"https?://[^/\s]+(/invitations/[^\s\"<]+/)", mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(1)


def db_snapshot() -> dict:
    """Every row of every model (accounts in full, others by count and highest id)."""
    snapshot = {}
    for model in apps.get_models():
        manager = model._base_manager
        if model._meta.app_label in {"accounts", "account", "mfa"}:
            snapshot[model._meta.label] = sorted(
                tuple(str(v) for v in row) for row in manager.values_list()
            )
        elif model._meta.app_label != "sessions":
            snapshot[model._meta.label] = manager.count()
    return snapshot
