"""An organization's require-MFA rule holds on the API as on the pages."""

from tests.conftest import enable_totp


def test_member_without_totp_is_refused_when_the_organization_requires_mfa(org, member, member_api):
    assert member_api.get("/api/v1/orgs/acme/").status_code == 200
    org.require_mfa = True
    org.save()

    refused = member_api.get("/api/v1/orgs/acme/")
    assert refused.status_code == 403
    assert "two-factor" in refused.json()["detail"]

    enable_totp(member)
    assert member_api.get("/api/v1/orgs/acme/").status_code == 200


def test_a_key_follows_its_users_mfa_standing(org, owner, org_key):
    from tests.api.conftest import bearer

    client = bearer(org_key.key)
    assert client.get("/api/v1/orgs/acme/").status_code == 200
    org.require_mfa = True
    org.save()
    assert client.get("/api/v1/orgs/acme/").status_code == 403
    enable_totp(owner)
    assert client.get("/api/v1/orgs/acme/").status_code == 200
