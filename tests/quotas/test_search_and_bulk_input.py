"""Ids and searches typed or posted by hand: a digit that is not a number, an id out of range
or of another organization never crashes a page nor stops the rest of a bulk action."""

from django.urls import reverse

from quotas.workflow import RequestState as S

HUGE = "99999999999999999999"


def org_url(name, org, **kwargs):
    return reverse(name, kwargs={"org_slug": org.slug, **kwargs})


def test_a_search_for_a_superscript_digit_is_a_plain_text_search(
    client, org, member, request_in_state
):
    request_in_state(S.PENDING_APPROVAL, justification="fits in 10² GPUs")
    client.force_login(member)
    response = client.get(org_url("request_list", org), {"q": "²"})
    assert response.status_code == 200
    assert len(response.context["requests"]) == 1


def test_bulk_approve_ignores_malformed_ids(client, org, catalog, request_in_state):
    capacity_request = request_in_state(S.PENDING_APPROVAL, gpu_count=8)
    client.force_login(org.account_manager)
    response = client.post(reverse("staff_bulk_approve"), {"ids": ["²", str(capacity_request.pk)]})
    assert response.status_code == 302
    capacity_request.refresh_from_db()
    assert capacity_request.state == S.APPROVED


def test_bulk_approve_reports_a_request_of_another_manager_and_approves_the_rest(
    client, org, other_org, catalog, request_in_state, h100, east
):
    mine = request_in_state(S.PENDING_APPROVAL, gpu_count=8)
    theirs = request_in_state(S.PENDING_APPROVAL, gpu_count=8, organization=other_org)
    client.force_login(org.account_manager)
    response = client.post(
        reverse("staff_bulk_approve"), {"ids": [str(mine.pk), str(theirs.pk), HUGE]}
    )
    assert response.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.state, theirs.state) == (S.APPROVED, S.PENDING_APPROVAL)
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any(f"REQ-{theirs.pk}: no such request" in m for m in messages)
