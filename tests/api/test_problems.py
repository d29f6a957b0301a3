"""One error format under /api/: RFC 9457 problem details."""

import pytest
from rest_framework.test import APIClient

from accounts.models import Invitation, Membership
from portal.api.problems import exception_handler
from portal.errors import IllegalTransition

PROBLEM = "application/problem+json"
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "code"}


def assert_problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:gpc:problem:{code}"
    return body


def test_validation_error_names_each_field_and_writes_nothing(owner_api, org):
    response = owner_api.post(
        "/api/v1/orgs/acme/invitations/",
        {"email": "not-an-address", "role": "emperor"},
        format="json",
    )
    body = assert_problem(response, 400, "validation_error")
    assert {error["field"] for error in body["errors"]} == {"email", "role"}
    assert body["instance"] == "/api/v1/orgs/acme/invitations/"
    assert not Invitation.objects.for_organization(org).exists()


def test_domain_error_keeps_its_field(owner_api, org, member):
    response = owner_api.post(
        "/api/v1/orgs/acme/invitations/", {"email": member.email}, format="json"
    )
    body = assert_problem(response, 409, "conflict")
    assert body["errors"] == [{"field": "email", "message": body["detail"], "code": "conflict"}]
    assert "already a member" in body["detail"]


def test_conflict_removing_the_last_owner(owner_api, org, owner):
    membership = Membership.objects.for_organization(org).get(user=owner)
    response = owner_api.delete(f"/api/v1/orgs/acme/members/{membership.pk}/")
    body = assert_problem(response, 409, "conflict")
    assert "last owner" in body["detail"]
    assert Membership.objects.for_organization(org).filter(user=owner).exists()


def test_not_allowed_maps_to_403(api, org, owner, member):
    from tests.conftest import make_member

    admin = make_member(org, "admin", email="admin2@acme.example")
    api.force_login(admin)
    target = Membership.objects.for_organization(org).get(user=member)
    response = api.patch(
        f"/api/v1/orgs/acme/members/{target.pk}/", {"role": "owner"}, format="json"
    )
    body = assert_problem(response, 403, "permission_denied")
    assert body["errors"][0]["field"] == "role"
    assert Membership.objects.for_organization(org).get(pk=target.pk).role == "member"


def test_illegal_transition_is_409_with_current_state(rf):
    exc = IllegalTransition(obj_label="This request", current="approved", target="withdrawn")
    response = exception_handler(exc, {"request": rf.post("/api/v1/orgs/acme/requests/1/")})
    assert response.status_code == 409
    assert response.data["code"] == "illegal_transition"
    assert response.data["current_state"] == "approved"
    assert response.data["target_state"] == "withdrawn"
    assert response.content_type == PROBLEM


def test_unknown_api_url_is_a_problem_404(owner_api):
    assert_problem(owner_api.get("/api/v1/no-such-thing/"), 404, "not_found")


def test_unknown_organization_is_404(owner_api):
    assert_problem(owner_api.get("/api/v1/orgs/no-such-org/members/"), 404, "not_found")


def test_wrong_method_is_a_problem_405_with_allow(owner_api, org):
    response = owner_api.put("/api/v1/orgs/acme/members/", {}, format="json")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


def test_malformed_json_is_a_problem_400(owner_api, org):
    response = owner_api.post(
        "/api/v1/orgs/acme/invitations/", "{not json", content_type="application/json"
    )
    assert_problem(response, 400, "malformed_request")


@pytest.mark.urls("tests.api.urls_crash")
@pytest.mark.parametrize("url", ["/api/v1/test-crash/", "/api/v1/test-crash-drf/"])
def test_server_error_under_api_is_a_problem_500(db, url):
    client = APIClient(raise_request_exception=False)
    body = assert_problem(client.get(url), 500, "server_error")
    assert "boom" not in body["detail"]


def test_pages_outside_api_keep_html_errors(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith(PROBLEM)
