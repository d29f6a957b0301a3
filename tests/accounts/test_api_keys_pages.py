"""The API keys page of organization settings: list, create (secret shown once), revoke after
confirmation, through the same service and with the same audit rows as the API."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.apikeys import InvalidApiKey, api_key_authenticate, api_key_create_for_organization
from accounts.models import ApiKey, AuditEvent, Role
from tests.conftest import make_member

from .conftest import db_snapshot

pytestmark = pytest.mark.django_db

API_KEY_LIST_QUERIES = 6


def _list_url(org):
    return reverse("api_key_list", kwargs={"org_slug": org.slug})


def _revoke_url(org, api_key):
    return reverse("api_key_revoke", kwargs={"org_slug": org.slug, "api_key_id": api_key.pk})


def _issue(org, user, name="CI", scopes=("read",), **kwargs):
    return api_key_create_for_organization(
        organization=org, name=name, scopes=list(scopes), created_by=user, **kwargs
    )


def _actions(org):
    return list(
        AuditEvent.objects.for_organization(org).order_by("id").values_list("action", flat=True)
    )


def test_owner_creates_a_key_and_sees_its_secret_once(client, org, owner):
    client.force_login(owner)
    posted = client.post(
        _list_url(org), {"name": "Nightly CI", "scopes": ["read", "write"], "expires_at": ""}
    )
    # Post/Redirect/Get: the secret is shown by the GET the POST redirects to.
    assert posted.status_code == 302 and posted["Location"] == _list_url(org)
    assert posted["Cache-Control"] == "no-store"
    response = client.get(posted["Location"])
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    api_key = ApiKey.objects.for_organization(org).get()
    secret = response.context["secret"]
    assert secret.startswith(api_key.prefix + "_")
    body = response.content.decode()
    assert secret in body
    assert "shown only this once" in body
    assert 'data-copy-target="api-key-secret"' in body
    assert "js/copy_secret.js" in body
    assert (api_key.name, api_key.scopes, api_key.created_by, api_key.expires_at) == (
        "Nightly CI",
        ["read", "write"],
        owner,
        None,
    )
    assert api_key_authenticate(raw=secret).pk == api_key.pk
    event = AuditEvent.objects.for_organization(org).get(action="api_key.created")
    assert event.actor == owner
    assert event.changes == {
        "name": "Nightly CI",
        "prefix": api_key.prefix,
        "scopes": ["read", "write"],
        "expires_at": None,
    }
    listing = client.get(_list_url(org)).content.decode()
    assert api_key.prefix in listing and "Nightly CI" in listing
    assert secret not in listing


def test_refreshing_after_creating_a_key_neither_shows_the_secret_again_nor_creates_one(
    client, org, owner
):
    client.force_login(owner)
    posted = client.post(_list_url(org), {"name": "Nightly CI", "scopes": ["read"]}, follow=True)
    # The POST answered with a redirect: the page a refresh repeats is a GET.
    assert posted.redirect_chain == [(_list_url(org), 302)]
    secret = posted.context["secret"]
    assert secret in posted.content.decode()
    # What a browser refresh repeats now is the GET the POST redirected to.
    again = client.get(_list_url(org))
    assert again.status_code == 200
    body = again.content.decode()
    assert secret not in body
    assert "shown only this once" not in body
    api_key = ApiKey.objects.for_organization(org).get()
    assert api_key.prefix in body
    assert _actions(org).count("api_key.created") == 1


def test_expiry_date_sets_midnight_utc(client, org, admin_user):
    client.force_login(admin_user)
    day = (timezone.now() + timedelta(days=30)).date()
    response = client.post(
        _list_url(org), {"name": "Quarterly", "scopes": ["read"], "expires_at": day.isoformat()}
    )
    assert response.status_code == 302
    api_key = ApiKey.objects.for_organization(org).get()
    assert api_key.expires_at.isoformat() == f"{day.isoformat()}T00:00:00+00:00"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "", "scopes": ["read"]}, "name", "Give the key a name"),
        ({"name": "  ", "scopes": ["read"]}, "name", "Give the key a name"),
        ({"name": "Deploy bot", "scopes": []}, "scopes", "Choose at least one scope"),
        ({"name": "Deploy bot", "scopes": ["admin"]}, "scopes", "Select a valid choice"),
        ({"name": "x" * 101, "scopes": ["read"]}, "name", "at most 100 characters"),
        (
            {"name": "Deploy bot", "scopes": ["read"], "expires_at": "2020-01-01"},
            "expires_at",
            "must be in the future",
        ),
        (
            {"name": "Deploy bot", "scopes": ["read"], "expires_at": "soon"},
            "expires_at",
            "Enter a valid date",
        ),
    ],
)
def test_bad_input_is_named_next_to_its_field_keeps_the_input_and_writes_nothing(
    client, org, owner, data, field, message
):
    client.force_login(owner)
    before = db_snapshot()
    response = client.post(_list_url(org), data)
    assert response.status_code == 400
    form = response.context["form"]
    assert message in " ".join(form.errors[field]), form.errors
    assert db_snapshot() == before
    body = response.content.decode()
    if data["name"].strip() and len(data["name"]) <= 100:
        assert f'value="{data["name"]}"' in body  # what was typed is still there
    assert "gpc_" not in body


def test_revoke_asks_for_confirmation_then_the_key_gets_refused(client, org, owner):
    issued = _issue(org, owner)
    client.force_login(owner)
    confirm = client.get(_revoke_url(org, issued.api_key))
    assert confirm.status_code == 200
    assert "Revoke key" in confirm.content.decode()
    assert api_key_authenticate(raw=issued.key).pk == issued.api_key.pk  # GET changed nothing

    response = client.post(_revoke_url(org, issued.api_key))
    assert response.status_code == 302
    assert response["Location"] == _list_url(org)
    with pytest.raises(InvalidApiKey, match="revoked"):
        api_key_authenticate(raw=issued.key)
    event = AuditEvent.objects.for_organization(org).get(action="api_key.revoked")
    assert (event.actor, event.changes) == (
        owner,
        {"name": "CI", "prefix": issued.api_key.prefix},
    )
    listing = client.get(_list_url(org)).content.decode()
    assert "is revoked." in listing
    assert "Revoked" in listing
    assert _revoke_url(org, issued.api_key) not in listing

    client.post(_revoke_url(org, issued.api_key))  # twice: no second audit row
    assert _actions(org).count("api_key.revoked") == 1


def test_list_shows_every_column_and_state(client, org, owner, admin_user):
    now = timezone.now()
    active = _issue(org, owner, name="Active one", scopes=("read", "write")).api_key
    expired = _issue(org, admin_user, name="Old one", expires_at=now + timedelta(seconds=1))
    ApiKey.all_objects.filter(pk=expired.api_key.pk).update(expires_at=now - timedelta(days=1))
    revoked = _issue(org, owner, name="Gone").api_key
    revoked.revoked_at = now
    revoked.save()
    api_key_authenticate(raw=_issue(org, owner, name="Used").key)
    client.force_login(owner)
    response = client.get(_list_url(org))
    keys = {k.name: k for k in response.context["api_keys"]}
    assert {name: k.state for name, k in keys.items()} == {
        "Active one": "active",
        "Old one": "expired",
        "Gone": "revoked",
        "Used": "active",
    }
    body = response.content.decode()
    for text in (
        active.prefix,
        "read, write",
        "admin@acme.example",
        "owner@acme.example",
        "Expired",
        "Never",
    ):
        assert text in body
    assert keys["Used"].last_used_at is not None
    assert keys["Used"].last_used_at.strftime("%Y-%m-%d %H:%M") in body


@pytest.mark.parametrize("role", [Role.MEMBER, Role.BILLING, Role.VIEWER])
def test_roles_without_the_capability_get_403(client, org, owner, role):
    issued = _issue(org, owner)
    client.force_login(make_member(org, role))
    before = db_snapshot()
    assert client.get(_list_url(org)).status_code == 403
    assert client.post(_list_url(org), {"name": "x", "scopes": ["read"]}).status_code == 403
    assert client.post(_revoke_url(org, issued.api_key)).status_code == 403
    assert db_snapshot() == before


def test_another_organizations_key_answers_404_and_stays_usable(
    client, org, owner, other_org, other_owner
):
    theirs = _issue(other_org, other_owner)
    client.force_login(owner)
    assert client.get(_revoke_url(org, theirs.api_key)).status_code == 404
    assert client.post(_revoke_url(org, theirs.api_key)).status_code == 404
    assert api_key_authenticate(raw=theirs.key).pk == theirs.api_key.pk
    # and the owner of the other organization cannot reach Acme's page at all
    mine = _issue(org, owner)
    client.force_login(other_owner)
    assert client.get(_list_url(org)).status_code == 404
    assert client.post(_revoke_url(org, mine.api_key)).status_code == 404
    assert client.get(_list_url(other_org)).content.decode().count("<tr>") == 2  # head + 1


def test_the_settings_page_and_navigation_link_to_api_keys(client, org, owner, member):
    client.force_login(owner)
    body = client.get(reverse("organization_settings", kwargs={"org_slug": org.slug}))
    assert body.content.decode().count(f'href="{_list_url(org)}"') == 2  # nav and settings card
    client.force_login(member)
    body = client.get(reverse("organization_settings", kwargs={"org_slug": org.slug}))
    assert _list_url(org) not in body.content.decode()


def test_api_key_list_query_count_is_flat(client, org, owner, django_assert_num_queries):
    _issue(org, owner)
    client.force_login(owner)
    client.get(_list_url(org))  # warm the session
    with django_assert_num_queries(API_KEY_LIST_QUERIES):
        client.get(_list_url(org))
    for n in range(12):
        _issue(org, make_member(org, Role.ADMIN), name=f"key {n}")
    with django_assert_num_queries(API_KEY_LIST_QUERIES):
        response = client.get(_list_url(org))
    assert len(response.context["api_keys"]) == 13
