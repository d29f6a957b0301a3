from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.apikeys import _NOT_LOOKED_UP, api_key_authenticate, api_key_revoke
from accounts.models import ApiKey, AuditEvent

from .conftest import bearer

ME = "/api/v1/me/"


def test_bearer_key_authenticates_as_its_user(org_key, owner):
    response = bearer(org_key.key).get(ME)
    assert response.status_code == 200
    assert response.json()["email"] == owner.email
    assert response.json()["credential"] == {
        "kind": "api_key",
        "prefix": org_key.api_key.prefix,
        "scopes": ["read", "write"],
        "organization": "acme",
    }


def test_key_format_has_visible_prefix_and_only_its_hash_is_stored(org_key):
    namespace, short, secret = org_key.key.split("_", 2)
    assert namespace == "gpc" and len(short) == 8 and len(secret) >= 32
    row = ApiKey.all_objects.get(pk=org_key.api_key.pk)
    assert row.prefix == f"gpc_{short}"
    assert org_key.key not in {row.key_hash, row.prefix, row.name}
    assert secret not in row.key_hash


def test_unauthenticated_gets_401_with_bearer_challenge(db):
    response = APIClient().get(ME)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "credential",
    ["gpc_abcdefgh_not-a-real-secret", "gpc_short_x", "nonsense", "gpc_abcdefgh_"],
)
def test_unknown_or_malformed_key_gets_401(db, credential):
    response = bearer(credential).get(ME)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_right_prefix_wrong_secret_gets_401(org_key):
    response = bearer(f"{org_key.api_key.prefix}_{'x' * 43}").get(ME)
    assert response.status_code == 401


def test_revoked_key_gets_401_at_once(org_key, owner):
    client = bearer(org_key.key)
    assert client.get(ME).status_code == 200
    api_key_revoke(api_key=org_key.api_key, actor=owner)
    response = client.get(ME)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_expired_key_gets_401(org_key):
    ApiKey.all_objects.filter(pk=org_key.api_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = bearer(org_key.key).get(ME)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_key_of_deactivated_user_gets_401(org_key, owner):
    owner.is_active = False
    owner.save()
    assert bearer(org_key.key).get(ME).status_code == 401


def test_last_use_is_recorded_at_most_once_a_minute(org_key, django_assert_num_queries):
    now = timezone.now()
    with django_assert_num_queries(2):  # the lookup and the update
        api_key_authenticate(raw=org_key.key, at=now)
    with django_assert_num_queries(1):  # the lookup only
        api_key_authenticate(raw=org_key.key, at=now + timedelta(seconds=30))
    assert ApiKey.all_objects.get(pk=org_key.api_key.pk).last_used_at == now
    later = now + timedelta(seconds=61)
    api_key_authenticate(raw=org_key.key, at=later)
    assert ApiKey.all_objects.get(pk=org_key.api_key.pk).last_used_at == later


def _fields(instance, leave_out=frozenset()):
    return {
        f.attname: getattr(instance, f.attname)
        for f in instance._meta.concrete_fields
        if f.attname not in leave_out
    }


def test_key_lookup_loads_what_select_related_would(org_key, owner, django_assert_num_queries):
    api_key = api_key_authenticate(raw=org_key.key)
    expected = ApiKey.all_objects.select_related("organization", "created_by").get(
        pk=org_key.api_key.pk
    )
    for loaded, wanted in (
        (api_key, expected),
        (api_key.organization, expected.organization),
        (api_key.created_by, expected.created_by),
    ):
        assert type(loaded) is type(wanted)
        assert not loaded._state.adding and loaded._state.db == "default"
        # Loaded: every column but those no API call reads, which are deferred ...
        deferred = loaded.get_deferred_fields()
        assert deferred == _NOT_LOOKED_UP[type(loaded)]
        with django_assert_num_queries(0):
            loaded_fields = _fields(loaded, leave_out=deferred)
        assert loaded_fields == _fields(wanted, leave_out=deferred)
        # ... and read on demand, as with .only().
        with django_assert_num_queries(len(deferred)):
            assert _fields(loaded) == _fields(wanted)
    assert api_key.member_role == "owner"


def test_provider_key_lookup_has_no_organization_or_role(ingest_key, superuser):
    api_key = api_key_authenticate(raw=ingest_key.key)
    assert api_key.organization is None
    assert api_key.created_by == superuser
    assert api_key.member_role is None


def test_session_authenticates_and_enforces_csrf_on_writes(owner, org):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.get(ME).status_code == 200
    response = client.post(
        "/api/v1/orgs/acme/invitations/", {"email": "new@acme.example"}, format="json"
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_key_creation_and_revocation_are_audited(org_key, owner, org):
    api_key_revoke(api_key=org_key.api_key, actor=owner)
    actions = list(
        AuditEvent.objects.for_organization(org)
        .filter(target_type="accounts.ApiKey")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["api_key.created", "api_key.revoked"]


def test_command_creates_organization_key_acting_for_the_owner(org, owner):
    out, err = StringIO(), StringIO()
    call_command(
        "create_api_key", "--org", "acme", "--scopes", "read,write", "--name", "ci",
        stdout=out, stderr=err,
    )  # fmt: skip
    key = out.getvalue().strip()
    assert key.startswith("gpc_")
    assert "not shown again" in err.getvalue()
    response = bearer(key).get(ME)
    assert response.status_code == 200
    assert response.json()["email"] == owner.email
    assert response.json()["credential"]["scopes"] == ["read", "write"]


def test_command_creates_provider_key(superuser):
    out = StringIO()
    call_command(
        "create_api_key", "--provider", "--scopes", "usage:ingest", "--name", "metering",
        stdout=out, stderr=StringIO(),
    )  # fmt: skip
    api_key = api_key_authenticate(raw=out.getvalue().strip())
    assert api_key.organization is None
    assert api_key.scopes == ["usage:ingest"]
    assert api_key.created_by == superuser


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "acme", "--scopes", "usage:ingest", "--name", "x"], "Unknown scope"),
        (["--org", "nope", "--scopes", "read", "--name", "x"], "No organization"),
        (["--org", "acme", "--scopes", "", "--name", "x"], "at least one scope"),
        (["--provider", "--scopes", "read", "--name", "x"], "Unknown scope"),
        (["--org", "acme", "--scopes", "read", "--name", "x", "--user", "dev@acme.example"],
         "not an owner or admin"),
    ],
)  # fmt: skip
def test_command_refuses_bad_input_and_writes_nothing(org, owner, member, superuser, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_api_key", *args, stdout=StringIO(), stderr=StringIO())
    assert ApiKey.all_objects.count() == 0
