"""The request and reservation pages: who sees what, forms, htmx fragments, query counts and
the journey from a member's request to a visible reservation."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from quotas.capacity import hold_place
from quotas.models import CapacityHold, CapacityRequest, Reservation
from quotas.pricing import quote_price
from quotas.selectors.availability import pool_earliest_start
from quotas.services import capacity_request_approve
from quotas.tasks import run_checks_task
from tests.conftest import make_member
from tests.factories import OrganizationFactory

from .conftest import soon

LOCAL = "%Y-%m-%dT%H:%M"


def org_url(name, org, **kwargs):
    return reverse(name, kwargs={"org_slug": org.slug, **kwargs})


def form_data(h100, east, starts_at, ends_at, org, **extra):
    """Form values as a browser sends them: local times in the organization's time zone."""
    tz = org.tzinfo
    data = {
        "kind": "reservation",
        "sku": h100.pk,
        "region": east.pk,
        "gpu_count": 16,
        "starts_at": starts_at.astimezone(tz).strftime(LOCAL),
        "ends_at": ends_at.astimezone(tz).strftime(LOCAL),
        "justification": "Fine-tuning run for the Q1 model",
    }
    data.update(extra)
    return data


@pytest.fixture
def berlin_org(org):
    org.time_zone = "Europe/Berlin"
    org.save()
    return org


# --- Who sees what -----------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "can_create"),
    [
        (Role.OWNER, True),
        (Role.ADMIN, True),
        (Role.MEMBER, True),
        (Role.BILLING, False),
        (Role.VIEWER, False),
    ],
)
def test_pages_render_for_each_role(client, org, catalog, role, can_create, request_in_state):
    capacity_request = request_in_state("pending_approval")
    user = make_member(org, role)
    client.force_login(user)
    for name in ("org_dashboard", "request_list", "reservation_list"):
        assert client.get(org_url(name, org)).status_code == 200, name
    detail = client.get(org_url("request_detail", org, pk=capacity_request.pk))
    assert detail.status_code == 200
    assert client.get(org_url("request_create", org)).status_code == (200 if can_create else 403)
    withdraw = org_url("request_action", org, pk=capacity_request.pk, action="withdraw")
    assert (b"Withdraw" in detail.content) is (role in (Role.OWNER, Role.ADMIN, Role.MEMBER))
    if not can_create:
        assert client.post(withdraw).status_code == 403
        capacity_request.refresh_from_db()
        assert capacity_request.state == "pending_approval"


@pytest.mark.django_db
def test_staff_pages_render_for_their_roles(
    client, org, catalog, capacity_planner, request_in_state
):
    account_manager = org.account_manager
    first = request_in_state("pending_approval")
    second = request_in_state("pending_second_approval", first_approved_by=account_manager)
    client.force_login(account_manager)
    inbox = client.get(reverse("staff_approvals"))
    assert inbox.status_code == 200 and first.reference.encode() in inbox.content
    assert client.get(reverse("staff_second_approvals")).status_code == 403
    assert client.get(reverse("staff_request_detail", args=[first.pk])).status_code == 200
    client.force_login(capacity_planner)
    queue = client.get(reverse("staff_second_approvals"))
    assert queue.status_code == 200 and second.reference.encode() in queue.content
    assert client.get(reverse("staff_home")).status_code == 200


@pytest.mark.django_db
def test_account_manager_inbox_shows_only_their_organizations(
    client, org, other_org, catalog, request_in_state, h100, east
):
    mine = request_in_state("pending_approval")
    theirs = CapacityRequest.all_objects.create(
        organization=other_org,
        sku=h100,
        region=east,
        gpu_count=8,
        starts_at=soon(3),
        ends_at=soon(4),
        state="pending_approval",
    )
    client.force_login(org.account_manager)
    content = client.get(reverse("staff_approvals")).content
    assert mine.reference.encode() in content
    assert f">{theirs.reference}<".encode() not in content
    assert client.get(reverse("staff_request_detail", args=[theirs.pk])).status_code == 404


# --- The request form --------------------------------------------------------------------------
@pytest.mark.django_db
def test_availability_fragment_shows_the_selector_figures(
    client, org, member, catalog, h100, east, west_pool
):
    starts_at, ends_at = soon(3), soon(5)
    client.force_login(member)
    response = client.get(
        org_url("request_availability", org), form_data(h100, east, starts_at, ends_at, org)
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-figure="free-min">64<' in html
    assert 'data-fits="yes"' in html
    assert 'data-region="us-west-1"' in html  # west has 32 free: 16 fit there too
    quote = quote_price(
        organization=org, sku=h100, region=east, gpu_count=16, starts_at=starts_at, ends_at=ends_at
    )
    assert quote.source == "contract"
    assert f'data-figure="total"><strong>{quote.total:,}' in html.replace("\u202f", ",")


@pytest.mark.django_db
def test_availability_fragment_offers_the_earliest_start_when_it_does_not_fit(
    client, org, other_org, member, catalog, h100, east, east_pool
):
    busy_from, busy_until = soon(3), soon(6)
    hold_place(
        pool=east_pool,
        organization=other_org,
        gpu_count=56,
        starts_at=busy_from,
        ends_at=busy_until,
        kind=CapacityHold.Kind.RESERVATION,
    )
    starts_at, ends_at = soon(4), soon(5)
    client.force_login(member)
    html = client.get(
        org_url("request_availability", org), form_data(h100, east, starts_at, ends_at, org)
    ).content.decode()
    assert 'data-fits="no"' in html
    assert 'data-figure="free-min">8<' in html
    expected = pool_earliest_start(
        pool=east_pool,
        gpu_count=16,
        duration=ends_at - starts_at,
        not_before=starts_at,
        horizon=timedelta(days=365),
    )
    assert expected == busy_until
    assert f'datetime="{expected.isoformat()}"' in html


@pytest.mark.django_db
def test_availability_fragment_asks_for_what_is_missing(client, org, member, catalog):
    client.force_login(member)
    response = client.get(org_url("request_availability", org), {"kind": "reservation"})
    assert b"Choose a GPU type, a region" in response.content


@pytest.mark.django_db
def test_form_errors_stay_next_to_the_field_and_keep_what_was_typed(
    client, org, member, catalog, h100, east
):
    client.force_login(member)
    data = form_data(h100, east, soon(3), soon(5), org, gpu_count="")
    response = client.post(org_url("request_create", org), {**data, "step": "review"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Say how many GPUs you need." in html
    assert "Fine-tuning run for the Q1 model" in html
    assert f'value="{data["starts_at"]}"' in html
    assert CapacityRequest.objects.for_organization(org).count() == 0


@pytest.mark.django_db
def test_service_refusal_is_shown_on_the_field(client, org, member, catalog, h100, east):
    client.force_login(member)
    data = form_data(h100, east, soon(3), soon(5), org, gpu_count=12)  # not whole nodes
    response = client.post(org_url("request_create", org), {**data, "step": "submit"})
    assert response.status_code == 200
    assert b"errorlist" in response.content
    assert CapacityRequest.objects.for_organization(org).count() == 0


@pytest.mark.django_db
def test_review_step_shows_a_summary_and_creates_nothing(
    client, org, berlin_org, member, catalog, h100, east
):
    starts_at = soon(3)
    client.force_login(member)
    data = form_data(h100, east, starts_at, starts_at + timedelta(days=2), org)
    response = client.post(org_url("request_create", org), {**data, "step": "review"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Confirm your request" in html
    assert "Europe/Berlin" in html
    assert starts_at.astimezone(org.tzinfo).strftime("%Y-%m-%d %H:%M") in html
    assert CapacityRequest.objects.for_organization(org).count() == 0


@pytest.mark.django_db
def test_times_typed_in_the_organization_time_zone_are_stored_in_utc(
    client, berlin_org, member, catalog, h100, east, django_capture_on_commit_callbacks
):
    org = berlin_org
    starts_at = soon(3)
    client.force_login(member)
    data = form_data(h100, east, starts_at, starts_at + timedelta(days=2), org)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(org_url("request_create", org), {**data, "step": "draft"})
    assert response.status_code == 302
    capacity_request = CapacityRequest.objects.for_organization(org).get()
    assert capacity_request.state == "draft"
    assert capacity_request.starts_at == starts_at


# --- End to end --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_request_created_through_the_pages_is_approved_and_its_reservation_shown(
    client, org, member, catalog, h100, east, django_capture_on_commit_callbacks
):
    starts_at = soon(3)
    ends_at = starts_at + timedelta(days=7)
    client.force_login(member)
    data = form_data(h100, east, starts_at, ends_at, org)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(org_url("request_create", org), {**data, "step": "submit"})
    assert response.status_code == 302
    capacity_request = CapacityRequest.objects.for_organization(org).get()
    assert response["Location"] == org_url("request_detail", org, pk=capacity_request.pk)
    assert capacity_request.state == "submitted"

    run_checks_task(capacity_request.pk, org.pk)  # what the worker does after commit
    capacity_request.refresh_from_db()
    assert capacity_request.state == "pending_approval"
    detail = client.get(org_url("request_detail", org, pk=capacity_request.pk)).content.decode()
    assert "Automatic checks" in detail and "account manager" in detail

    client.force_login(org.account_manager)
    inbox = client.get(reverse("staff_approvals")).content.decode()
    assert capacity_request.reference in inbox
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            reverse("staff_approve", args=[capacity_request.pk]), {"next_page": "inbox"}
        )
    assert response.status_code == 302 and response["Location"] == reverse("staff_approvals")
    capacity_request.refresh_from_db()
    assert capacity_request.state == "approved"

    client.force_login(member)
    reservation = Reservation.objects.for_organization(org).get()
    listing = client.get(org_url("reservation_list", org)).content.decode()
    assert reservation.reference in listing
    page = client.get(org_url("reservation_detail", org, pk=reservation.pk)).content.decode()
    assert "16 \u00d7 H100 SXM 80GB" in page
    assert "Awaiting approval → <strong>Approved</strong>" in page
    dashboard = client.get(org_url("org_dashboard", org)).content.decode()
    assert reservation.reference in dashboard


@pytest.mark.django_db
def test_counter_offer_from_the_staff_page_is_accepted_by_the_member(
    client, org, member, catalog, request_in_state, django_capture_on_commit_callbacks
):
    capacity_request = request_in_state("pending_approval")
    client.force_login(org.account_manager)
    tz = org.tzinfo
    url = reverse("staff_counter_offer", args=[capacity_request.pk])
    assert client.get(url).status_code == 200
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            url,
            {
                "region": capacity_request.region_id,
                "sku": capacity_request.sku_id,
                "gpu_count": 8,
                "starts_at": capacity_request.starts_at.astimezone(tz).strftime(LOCAL),
                "ends_at": capacity_request.ends_at.astimezone(tz).strftime(LOCAL),
                "note": "Half now, the rest next month.",
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    capacity_request.refresh_from_db()
    assert capacity_request.state == "counter_offered"

    client.force_login(member)
    detail = client.get(org_url("request_detail", org, pk=capacity_request.pk)).content.decode()
    assert "Half now, the rest next month." in detail and "Accept offer" in detail
    accept = org_url("request_action", org, pk=capacity_request.pk, action="accept_offer")
    assert b"Accept the offer?" in client.get(accept).content
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(accept).status_code == 302
    capacity_request.refresh_from_db()
    assert capacity_request.state == "approved"
    assert Reservation.objects.for_organization(org).get().gpu_count == 8


@pytest.mark.django_db
def test_reject_needs_a_reason(
    client, org, catalog, request_in_state, django_capture_on_commit_callbacks
):
    capacity_request = request_in_state("pending_approval")
    client.force_login(org.account_manager)
    url = reverse("staff_reject", args=[capacity_request.pk])
    assert client.get(url).status_code == 200
    response = client.post(url, {"reason": ""})
    assert response.status_code == 400 and b"This field is required." in response.content
    capacity_request.refresh_from_db()
    assert capacity_request.state == "pending_approval"
    with django_capture_on_commit_callbacks(execute=False):
        client.post(url, {"reason": "No contract cover for this region."})
    capacity_request.refresh_from_db()
    assert capacity_request.state == "rejected"


@pytest.mark.django_db
def test_withdraw_asks_for_confirmation_first(
    client, org, member, catalog, request_in_state, django_capture_on_commit_callbacks
):
    capacity_request = request_in_state("pending_approval", requested_by=member)
    client.force_login(member)
    url = org_url("request_action", org, pk=capacity_request.pk, action="withdraw")
    page = client.get(url)
    assert b"cannot be undone" in page.content
    capacity_request.refresh_from_db()
    assert capacity_request.state == "pending_approval"
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(url, {"reason": "Plans changed"}).status_code == 302
    capacity_request.refresh_from_db()
    assert capacity_request.state == "withdrawn"


@pytest.mark.django_db
def test_illegal_action_shows_the_reason_and_changes_nothing(
    client, org, member, catalog, request_in_state
):
    capacity_request = request_in_state("approved", requested_by=member)
    client.force_login(member)
    url = org_url("request_action", org, pk=capacity_request.pk, action="withdraw")
    response = client.post(url, follow=True)
    assert b"approved" in response.content
    capacity_request.refresh_from_db()
    assert capacity_request.state == "approved"


@pytest.mark.django_db
def test_comments_between_tenant_and_provider(
    client, org, member, catalog, request_in_state, django_capture_on_commit_callbacks
):
    capacity_request = request_in_state("pending_approval")
    client.force_login(member)
    with django_capture_on_commit_callbacks(execute=False):
        client.post(org_url("request_comment", org, pk=capacity_request.pk), {"body": "Any news?"})
    client.force_login(org.account_manager)
    detail = client.get(reverse("staff_request_detail", args=[capacity_request.pk]))
    assert b"Any news?" in detail.content
    with django_capture_on_commit_callbacks(execute=False):
        client.post(
            reverse("staff_request_comment", args=[capacity_request.pk]),
            {"body": "Looking at it today."},
        )
    client.force_login(member)
    page = client.get(org_url("request_detail", org, pk=capacity_request.pk))
    assert b"Looking at it today." in page.content
    response = client.post(org_url("request_comment", org, pk=capacity_request.pk), {"body": ""})
    assert response.status_code == 400 and b"This field is required." in response.content


@pytest.mark.django_db
def test_reservation_cancel_from_its_page(
    client, org, member, owner, catalog, request_in_state, django_capture_on_commit_callbacks
):
    capacity_request = request_in_state("pending_approval")
    with django_capture_on_commit_callbacks(execute=False):
        capacity_request_approve(capacity_request=capacity_request, actor=org.account_manager)
    reservation = Reservation.objects.for_organization(org).get()
    client.force_login(owner)
    url = org_url("reservation_action", org, pk=reservation.pk, action="cancel")
    assert b"Cancel this reservation" in client.get(url).content
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(url).status_code == 302
    reservation.refresh_from_db()
    assert reservation.state == "cancelled"


@pytest.mark.django_db
def test_request_list_filters(client, org, member, catalog, request_in_state, h200, east):
    pending = request_in_state("pending_approval")
    withdrawn = request_in_state("withdrawn")
    client.force_login(member)
    url = org_url("request_list", org)
    content = client.get(url, {"state": "withdrawn"}).content.decode()
    assert f">{withdrawn.reference}<" in content and f">{pending.reference}<" not in content
    content = client.get(url, {"q": pending.reference}).content.decode()
    assert f">{pending.reference}<" in content and f">{withdrawn.reference}<" not in content
    empty = client.get(url, {"sku": h200.pk}).content.decode()
    assert "No request matches these filters" in empty


# --- Query counts ------------------------------------------------------------------------------
def _grow(request_in_state, n):
    for i in range(n):
        request_in_state(("pending_approval", "withdrawn", "draft")[i % 3], starts_at=soon(3 + i))


def _approved(org, request_in_state, n):
    for i in range(n):
        capacity_request = request_in_state("pending_approval", starts_at=soon(3 + i, hours=1))
        capacity_request_approve(capacity_request=capacity_request, actor=org.account_manager)


# Pinned: a change that adds a query per page must say so here.
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("page", "queries"), [("request_list", 9), ("reservation_list", 7), ("org_dashboard", 10)]
)
def test_tenant_list_pages_run_a_fixed_number_of_queries(
    client,
    org,
    member,
    catalog,
    request_in_state,
    page,
    queries,
    django_assert_num_queries,
    django_capture_on_commit_callbacks,
):
    client.force_login(member)
    url = org_url(page, org)
    with django_capture_on_commit_callbacks(execute=False):
        _grow(request_in_state, 2)
        _approved(org, request_in_state, 1)
    client.get(url)
    with django_assert_num_queries(queries):
        client.get(url)
    with django_capture_on_commit_callbacks(execute=False):
        _grow(request_in_state, 6)
        _approved(org, request_in_state, 3)
    with django_assert_num_queries(queries):
        assert client.get(url).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("page", "queries"), [("staff_approvals", 8), ("staff_second_approvals", 8)]
)
def test_staff_queues_run_a_fixed_number_of_queries(
    client,
    org,
    catalog,
    capacity_planner,
    request_in_state,
    page,
    queries,
    django_assert_num_queries,
):
    client.force_login(capacity_planner)
    url = reverse(page)
    state = "pending_approval" if page == "staff_approvals" else "pending_second_approval"
    request_in_state(state)
    client.get(url)
    with django_assert_num_queries(queries):
        client.get(url)
    for i in range(6):
        request_in_state(state, starts_at=soon(4 + i))
    with django_assert_num_queries(queries):
        response = client.get(url)
    assert response.content.count(b"Approve</button>") == 7


@pytest.mark.django_db
def test_price_on_reservation_is_the_frozen_quote(
    client, org, member, catalog, request_in_state, django_capture_on_commit_callbacks
):
    capacity_request = request_in_state("pending_approval")
    with django_capture_on_commit_callbacks(execute=False):
        capacity_request_approve(capacity_request=capacity_request, actor=org.account_manager)
    reservation = Reservation.objects.for_organization(org).get()
    assert reservation.total == Decimal("2.0000") * 16 * 24 * 7
    client.force_login(member)
    page = client.get(org_url("reservation_detail", org, pk=reservation.pk)).content.decode()
    assert "5,376.00 USD" in page
    assert timezone.now() < reservation.starts_at


@pytest.mark.django_db
def test_owner_signs_off_a_member_request_from_its_page(
    client, org, owner, member, catalog, request_in_state, django_capture_on_commit_callbacks
):
    capacity_request = request_in_state("pending_internal_approval", requested_by=member)
    client.force_login(member)
    detail = client.get(org_url("request_detail", org, pk=capacity_request.pk)).content
    assert b"Sign off" not in detail  # members do not sign off
    url = org_url("request_action", org, pk=capacity_request.pk, action="sign_off")
    assert client.post(url).status_code == 403
    client.force_login(owner)
    detail = client.get(org_url("request_detail", org, pk=capacity_request.pk)).content
    assert b"Sign off" in detail and b"Refuse sign-off" in detail
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert client.post(url).status_code == 302
    capacity_request.refresh_from_db()
    assert capacity_request.state == "submitted"
    assert callbacks  # the checks are enqueued after commit


@pytest.mark.django_db
def test_refusing_sign_off_needs_a_reason(client, org, owner, member, catalog, request_in_state):
    capacity_request = request_in_state("pending_internal_approval", requested_by=member)
    client.force_login(owner)
    url = org_url("request_action", org, pk=capacity_request.pk, action="sign_off_reject")
    response = client.post(url, {"reason": ""})
    assert response.status_code == 400 and b"This field is required." in response.content
    capacity_request.refresh_from_db()
    assert capacity_request.state == "pending_internal_approval"


@pytest.mark.django_db
def test_quota_increase_request_through_the_pages(
    client, org, member, catalog, h100, east, django_capture_on_commit_callbacks
):
    client.force_login(member)
    data = {"kind": "quota_increase", "sku": h100.pk, "region": east.pk, "on_demand_limit": 24}
    fragment = client.get(org_url("request_availability", org), data)
    assert b"holds no capacity" in fragment.content
    review = client.post(org_url("request_create", org), {**data, "step": "review"})
    assert b"New on-demand limit" in review.content
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(org_url("request_create", org), {**data, "step": "submit"})
    assert response.status_code == 302
    capacity_request = CapacityRequest.objects.for_organization(org).get()
    assert capacity_request.kind == "quota_increase"
    assert capacity_request.on_demand_limit == 24


@pytest.mark.django_db
def test_extending_a_reservation_creates_an_extension_request(
    client, org, member, catalog, request_in_state, django_capture_on_commit_callbacks
):
    capacity_request = request_in_state("pending_approval", requested_by=member)
    with django_capture_on_commit_callbacks(execute=False):
        capacity_request_approve(capacity_request=capacity_request, actor=org.account_manager)
    reservation = Reservation.objects.for_organization(org).get()
    client.force_login(member)
    url = org_url("reservation_extend", org, pk=reservation.pk)
    assert client.get(url).status_code == 200
    too_early = reservation.ends_at - timedelta(hours=1)
    response = client.post(url, {"ends_at": too_early.astimezone(org.tzinfo).strftime(LOCAL)})
    assert response.status_code == 400 and b"after the current end" in response.content
    new_end = reservation.ends_at + timedelta(days=2)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(url, {"ends_at": new_end.astimezone(org.tzinfo).strftime(LOCAL)})
    extension = CapacityRequest.objects.for_organization(org).get(extends_reservation=reservation)
    assert response["Location"] == org_url("request_detail", org, pk=extension.pk)
    assert (extension.starts_at, extension.ends_at) == (reservation.ends_at, new_end)


@pytest.mark.django_db
def test_bulk_approve_approves_what_fits_and_reports_the_rest(
    client, org, catalog, request_in_state, django_capture_on_commit_callbacks
):
    starts_at = soon(3)
    fits = [request_in_state("pending_approval", gpu_count=32, starts_at=starts_at) for _ in "ab"]
    too_many = request_in_state("pending_approval", gpu_count=32, starts_at=starts_at)
    client.force_login(org.account_manager)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            reverse("staff_bulk_approve"),
            {"ids": [r.pk for r in [*fits, too_many]]},
            follow=True,
        )
    content = response.content.decode()
    states = {
        r.pk: r.state
        for r in CapacityRequest.objects.for_organization(org).filter(
            pk__in=[r.pk for r in [*fits, too_many]]
        )
    }
    assert sorted(states.values()) == ["approved", "approved", "pending_approval"]
    assert f"Not approved: {too_many.reference}" in content


@pytest.mark.django_db
def test_staff_detail_shows_live_capacity_and_quote(
    client, org, catalog, request_in_state, west_pool, h100, west
):
    capacity_request = request_in_state("pending_approval", gpu_count=48)
    capacity_request.alternative_regions.set([west])
    client.force_login(org.account_manager)
    html = client.get(reverse("staff_request_detail", args=[capacity_request.pk])).content
    html = html.decode()
    assert "Capacity and price now" in html
    assert 'H100 SXM 80GB in us-east-1</td><td class="num">64</td>' in html
    assert 'H100 SXM 80GB in us-west-1</td><td class="num">32</td>' in html
    quote = quote_price(
        organization=org,
        sku=h100,
        region=capacity_request.region,
        gpu_count=48,
        starts_at=capacity_request.starts_at,
        ends_at=capacity_request.ends_at,
    )
    assert f"<strong>{quote.total:,} USD</strong>" in html


@pytest.mark.django_db
def test_release_an_active_reservation_early_from_its_page(
    client, org, member, catalog, request_in_state, django_capture_on_commit_callbacks
):
    from quotas.services import reservation_activate

    started = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    capacity_request = request_in_state("pending_approval", requested_by=member, starts_at=started)
    with django_capture_on_commit_callbacks(execute=False):
        capacity_request_approve(capacity_request=capacity_request, actor=org.account_manager)
        reservation = Reservation.objects.for_organization(org).get()
        assert reservation_activate(reservation_id=reservation.pk)
    client.force_login(member)
    detail = client.get(org_url("reservation_detail", org, pk=reservation.pk)).content
    assert b"Release early" in detail and b"Cancel reservation" not in detail
    url = org_url("reservation_action", org, pk=reservation.pk, action="release")
    assert b"stop being yours at once" in client.get(url).content
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(url, {"reason": "Training finished early"}).status_code == 302
    reservation.refresh_from_db()
    assert reservation.state == "released_early"
    assert reservation.end_reason == "Training finished early"


# --- Capacity planner --------------------------------------------------------------------------
@pytest.mark.django_db
def test_capacity_map_shows_free_and_committed_per_pool(
    client, org, other_org, catalog, capacity_planner, east_pool, django_assert_num_queries
):
    hold_place(
        pool=east_pool,
        organization=other_org,
        gpu_count=48,
        starts_at=soon(2),
        ends_at=soon(4),
        kind=CapacityHold.Kind.RESERVATION,
    )
    client.force_login(capacity_planner)
    url = reverse("staff_capacity")
    html = client.get(url).content.decode()
    assert "64 / 64 free" in html and "75% committed" in html  # 48 of 64 within 30 days
    assert "32 / 32 free" in html and "0% committed" in html
    with django_assert_num_queries(10):
        client.get(url)
    from tests.factories import CapacityPoolFactory, GpuSkuFactory, RegionFactory

    from .conftest import with_capacity

    for i in range(4):
        with_capacity(CapacityPoolFactory(sku=GpuSkuFactory(), region=RegionFactory()), 8 + i)
    with django_assert_num_queries(10):
        assert client.get(url).status_code == 200


@pytest.mark.django_db
def test_capacity_pages_are_for_capacity_planners(client, org, catalog, east_pool):
    client.force_login(org.account_manager)
    assert client.get(reverse("staff_capacity")).status_code == 403
    assert client.get(reverse("staff_pool", args=[east_pool.pk])).status_code == 403


@pytest.mark.django_db
def test_pool_page_charts_capacity_held_and_requested(
    client, org, catalog, capacity_planner, east_pool, request_in_state
):
    waiting = request_in_state("waitlisted", gpu_count=24)
    client.force_login(capacity_planner)
    response = client.get(reverse("staff_pool", args=[east_pool.pk]))
    chart = response.context["chart"]
    day = waiting.starts_at.date().isoformat()
    i = chart["labels"].index(day)
    assert chart["capacity"][i] == 64
    assert chart["held"][i] == 0
    assert chart["requested"][i] == 24
    assert waiting.reference in response.content.decode()
    assert b'id="pool-chart-data"' in response.content


# --- Approval policy ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_owner_sets_sign_off_but_not_auto_approval(client, org, owner, member, catalog):
    from quotas.services import approval_policy_for

    url = org_url("approval_policy", org)
    client.force_login(member)
    assert client.get(url).status_code == 200
    assert client.post(url, {"signoff_for_members": "on"}).status_code == 403
    client.force_login(owner)
    page = client.get(url).content.decode()
    assert "signoff_for_members" in page and "auto_approve_max_gpus" not in page
    response = client.post(
        url, {"signoff_for_members": "on", "auto_approve_max_gpus": "512"}, follow=True
    )
    assert b"The approval policy is saved." in response.content
    policy = approval_policy_for(org)
    assert policy.signoff_for_members is True
    assert policy.auto_approve_max_gpus == 0


@pytest.mark.django_db
def test_account_manager_sets_auto_approval(client, org, catalog):
    from quotas.services import approval_policy_for

    client.force_login(org.account_manager)
    url = org_url("approval_policy", org)
    response = client.post(url, {"auto_approve_max_gpus": "-1", "auto_approve_max_value": "1000"})
    assert response.status_code == 400 and b"errorlist" in response.content
    response = client.post(
        url,
        {
            "auto_approve_max_gpus": "64",
            "auto_approve_max_value": "50000",
            "auto_approve_requires_contract": "on",
        },
    )
    assert response.status_code == 302
    policy = approval_policy_for(org)
    assert (policy.auto_approve_max_gpus, policy.auto_approve_max_value) == (64, Decimal("50000"))


@pytest.mark.django_db
def test_member_edits_a_draft_then_submits_it(
    client, org, member, catalog, new_request, west, django_capture_on_commit_callbacks
):
    draft = new_request(submit=False)
    client.force_login(member)
    detail = client.get(org_url("request_detail", org, pk=draft.pk)).content
    assert b"Edit draft" in detail
    url = org_url("request_edit", org, pk=draft.pk)
    page = client.get(url).content.decode()
    assert 'value="16"' in page and "Training run" in page
    data = form_data(
        draft.sku,
        draft.region,
        draft.starts_at,
        draft.ends_at,
        org,
        gpu_count=24,
        alternative_regions=[west.pk],
    )
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(url, {**data, "step": "submit"})
    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.gpu_count, draft.state) == (24, "submitted")
    assert list(draft.alternative_regions.all()) == [west]
    assert client.get(url).status_code == 404  # no longer a draft


@pytest.mark.django_db
def test_draft_edit_refusal_stays_on_the_field(client, org, member, catalog, new_request):
    draft = new_request(submit=False)
    client.force_login(member)
    data = form_data(draft.sku, draft.region, draft.starts_at, draft.ends_at, org, gpu_count=12)
    response = client.post(org_url("request_edit", org, pk=draft.pk), {**data, "step": "draft"})
    assert response.status_code == 400 and b"errorlist" in response.content
    draft.refresh_from_db()
    assert draft.gpu_count == 16


@pytest.mark.django_db
def test_staff_home_gives_account_managers_an_overview_of_their_organizations(
    client, org, other_org, catalog, contract, request_in_state, django_assert_num_queries
):
    request_in_state("pending_approval")
    request_in_state("draft")
    request_in_state("withdrawn")
    client.force_login(org.account_manager)
    html = client.get(reverse("staff_home")).content.decode()
    assert "ACME-2030" in html
    assert '<td class="num"><a href="/o/acme/requests/">2</a></td>' in html  # open: 2
    assert "Globex" not in html
    with django_assert_num_queries(7):
        client.get(reverse("staff_home"))
    for i in range(3):
        OrganizationFactory(account_manager=org.account_manager, name=f"Initech {i}")
    with django_assert_num_queries(7):
        assert b"Initech 2" in client.get(reverse("staff_home")).content
