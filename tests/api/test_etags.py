"""ETag and If-Match on members (412 when stale, nothing changed)."""

import pytest

from accounts.models import Membership, Role

from .conftest import bearer


@pytest.fixture
def target(org, member):
    return Membership.objects.for_organization(org).get(user=member)


def url(membership):
    return f"/api/v1/orgs/acme/members/{membership.pk}/"


def test_get_carries_an_etag_that_changes_with_the_row(owner_api, target):
    first = owner_api.get(url(target))["ETag"]
    assert first.startswith('"') and first.endswith('"')
    assert owner_api.get(url(target))["ETag"] == first
    Membership.all_objects.filter(pk=target.pk).update(role=Role.VIEWER)
    assert owner_api.get(url(target))["ETag"] != first


def test_matching_if_match_changes_and_returns_the_new_etag(owner_api, target):
    etag = owner_api.get(url(target))["ETag"]
    response = owner_api.patch(url(target), {"role": "admin"}, format="json", HTTP_IF_MATCH=etag)
    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    assert response["ETag"] != etag
    assert response["ETag"] == owner_api.get(url(target))["ETag"]


def test_stale_if_match_is_412_and_changes_nothing(owner_api, org_key, target):
    stale = owner_api.get(url(target))["ETag"]
    # Someone else changes the role in between.
    assert (
        bearer(org_key.key).patch(url(target), {"role": "viewer"}, format="json").status_code == 200
    )
    response = owner_api.patch(url(target), {"role": "admin"}, format="json", HTTP_IF_MATCH=stale)
    assert response.status_code == 412
    assert response.json()["code"] == "precondition_failed"
    assert response.json()["current_etag"] == owner_api.get(url(target))["ETag"]
    assert (
        Membership.objects.for_organization(target.organization_id).get(pk=target.pk).role
        == "viewer"
    )


def test_stale_if_match_on_delete_is_412_and_keeps_the_member(owner_api, target):
    response = owner_api.delete(url(target), HTTP_IF_MATCH='"stale"')
    assert response.status_code == 412
    assert Membership.all_objects.filter(pk=target.pk).exists()


def test_wildcard_and_lists_of_etags_match(owner_api, target):
    etag = owner_api.get(url(target))["ETag"]
    assert (
        owner_api.patch(
            url(target), {"role": "billing"}, format="json", HTTP_IF_MATCH="*"
        ).status_code
        == 200
    )
    etag = owner_api.get(url(target))["ETag"]
    response = owner_api.patch(
        url(target), {"role": "viewer"}, format="json", HTTP_IF_MATCH=f'"other", W/{etag}'
    )
    assert response.status_code == 200


def test_without_if_match_the_change_goes_through(owner_api, target):
    assert owner_api.patch(url(target), {"role": "viewer"}, format="json").status_code == 200


def test_organization_settings_honour_if_match(owner_api, org):
    etag = owner_api.get("/api/v1/orgs/acme/")["ETag"]
    assert (
        owner_api.patch(
            "/api/v1/orgs/acme/", {"name": "Acme Inc"}, format="json", HTTP_IF_MATCH=etag
        ).status_code
        == 200
    )
    response = owner_api.patch(
        "/api/v1/orgs/acme/", {"name": "Acme Ltd"}, format="json", HTTP_IF_MATCH=etag
    )
    assert response.status_code == 412
    org.refresh_from_db()
    assert org.name == "Acme Inc"
