"""Member list, invitations, role changes, removal and leaving, through the pages."""

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import AuditEvent, Invitation, Membership, Role
from tests.conftest import make_member

from .conftest import db_snapshot

pytestmark = pytest.mark.django_db


def _role_of(org, user):
    return Membership.objects.for_organization(org).get(user=user).role


def _actions(org):
    return list(
        AuditEvent.objects.for_organization(org).order_by("id").values_list("action", flat=True)
    )


def test_owner_invites_a_colleague_by_email(client, org, owner):
    client.force_login(owner)
    url = reverse("member_list", kwargs={"org_slug": org.slug})
    response = client.post(url, {"email": "New.Person@Example.com", "role": Role.ADMIN})
    assert response.status_code == 302
    invitation = Invitation.objects.for_organization(org).get()
    assert (invitation.email, invitation.role, invitation.invited_by) == (
        "new.person@example.com",
        Role.ADMIN,
        owner,
    )
    assert mail.outbox == []  # sent after the commit, which the test transaction never reaches
    assert "invitation.created" in _actions(org)
    page = client.get(url)
    assert "new.person@example.com" in page.content.decode()
    assert "Invitation sent to new.person@example.com." in page.content.decode()


def test_invitation_email_is_sent_after_commit(
    client, org, owner, django_capture_on_commit_callbacks
):
    client.force_login(owner)
    url = reverse("member_list", kwargs={"org_slug": org.slug})
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"email": "colleague@example.com", "role": Role.MEMBER})
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["colleague@example.com"]
    assert "/invitations/" in mail.outbox[0].body


@pytest.mark.parametrize(
    "email", ["not-an-email", "a@", "@example.com", "two@@example.com", "", "spaced out@x.io"]
)
def test_malformed_email_gets_a_clear_error_and_writes_nothing(client, org, owner, email):
    client.force_login(owner)
    before = db_snapshot()
    response = client.post(
        reverse("member_list", kwargs={"org_slug": org.slug}), {"email": email, "role": "member"}
    )
    assert response.status_code == 400
    errors = response.context["invite_form"].errors
    assert "email" in errors
    assert any(
        "e-mail" in e.lower() or "email" in e.lower() or "required" in e for e in errors["email"]
    )
    assert db_snapshot() == before


def test_inviting_an_existing_member_is_refused(client, org, owner, member):
    client.force_login(owner)
    before = db_snapshot()
    response = client.post(
        reverse("member_list", kwargs={"org_slug": org.slug}),
        {"email": "DEV@acme.example", "role": "member"},
    )
    assert response.status_code == 400
    assert "already a member" in response.context["invite_form"].errors["email"][0]
    assert db_snapshot() == before


def test_admin_cannot_invite_an_owner(client, org, owner, admin_user):
    client.force_login(admin_user)
    before = db_snapshot()
    response = client.post(
        reverse("member_list", kwargs={"org_slug": org.slug}),
        {"email": "boss@example.com", "role": Role.OWNER},
    )
    assert response.status_code == 400
    assert "role" in response.context["invite_form"].errors
    assert db_snapshot() == before


def test_owner_changes_a_role_and_it_is_audited(client, org, owner, member):
    client.force_login(owner)
    membership = Membership.objects.for_organization(org).get(user=member)
    response = client.post(
        reverse("member_role", kwargs={"org_slug": org.slug, "membership_id": membership.pk}),
        {"role": Role.ADMIN},
    )
    assert response.status_code == 302
    assert _role_of(org, member) == Role.ADMIN
    event = AuditEvent.objects.for_organization(org).get(action="membership.role_changed")
    assert event.changes == {"user": member.email, "role": ["member", "admin"]}
    assert event.actor == owner


def test_unknown_role_is_refused(client, org, owner, member):
    client.force_login(owner)
    membership = Membership.objects.for_organization(org).get(user=member)
    before = db_snapshot()
    response = client.post(
        reverse("member_role", kwargs={"org_slug": org.slug, "membership_id": membership.pk}),
        {"role": "emperor"},
        follow=True,
    )
    assert "Choose one of the listed roles." in response.content.decode()
    assert db_snapshot() == before


def test_demoting_the_last_owner_is_refused_and_changes_nothing(client, org, owner):
    client.force_login(owner)
    membership = Membership.objects.for_organization(org).get(user=owner)
    before = db_snapshot()
    response = client.post(
        reverse("member_role", kwargs={"org_slug": org.slug, "membership_id": membership.pk}),
        {"role": Role.ADMIN},
        follow=True,
    )
    assert "last owner" in response.content.decode()
    assert db_snapshot() == before


def test_removing_the_last_owner_is_refused_and_changes_nothing(client, org, owner, admin_user):
    # The admin cannot remove the owner at all; with two owners one may remove the other.
    client.force_login(admin_user)
    membership = Membership.objects.for_organization(org).get(user=owner)
    before = db_snapshot()
    url = reverse("member_remove", kwargs={"org_slug": org.slug, "membership_id": membership.pk})
    response = client.post(url, follow=True)
    assert "last owner" in response.content.decode()
    assert db_snapshot() == before


def test_admin_cannot_remove_an_owner_when_there_are_two(client, org, owner, admin_user):
    second = make_member(org, Role.OWNER, email="second@acme.example")
    client.force_login(admin_user)
    membership = Membership.objects.for_organization(org).get(user=second)
    before = db_snapshot()
    url = reverse("member_remove", kwargs={"org_slug": org.slug, "membership_id": membership.pk})
    response = client.post(url, follow=True)
    assert "Only an owner can remove another owner." in response.content.decode()
    assert db_snapshot() == before


def test_last_owner_cannot_leave(client, org, owner, member):
    client.force_login(owner)
    url = reverse("organization_leave", kwargs={"org_slug": org.slug})
    page = client.get(url)
    assert "You are the last owner" in page.content.decode()
    before = db_snapshot()
    response = client.post(url, follow=True)
    assert "last owner" in response.content.decode()
    assert db_snapshot() == before


def test_remove_asks_for_confirmation_then_removes(client, org, owner, member):
    client.force_login(owner)
    membership = Membership.objects.for_organization(org).get(user=member)
    url = reverse("member_remove", kwargs={"org_slug": org.slug, "membership_id": membership.pk})
    page = client.get(url)
    assert page.status_code == 200
    assert f"Remove {member.email}?" in page.content.decode()
    assert Membership.objects.for_organization(org).filter(user=member).exists()
    response = client.post(url)
    assert response.status_code == 302
    assert not Membership.objects.for_organization(org).filter(user=member).exists()
    event = AuditEvent.objects.for_organization(org).get(action="membership.removed")
    assert event.changes == {"user": member.email, "role": "member"}


def test_member_leaves_after_confirming(client, org, owner, member):
    client.force_login(member)
    url = reverse("organization_leave", kwargs={"org_slug": org.slug})
    assert client.get(url).status_code == 200
    response = client.post(url)
    assert response.status_code == 302
    assert not Membership.objects.for_organization(org).filter(user=member).exists()
    assert "membership.left" in _actions(org)
    # Gone: the organization now answers 404.
    assert client.get(reverse("member_list", kwargs={"org_slug": org.slug})).status_code == 404


def test_second_owner_can_leave(client, org, owner):
    second = make_member(org, Role.OWNER, email="second@acme.example")
    client.force_login(second)
    client.post(reverse("organization_leave", kwargs={"org_slug": org.slug}))
    assert _role_of(org, owner) == Role.OWNER
    assert not Membership.objects.for_organization(org).filter(user=second).exists()


def test_revoke_asks_for_confirmation_then_withdraws(client, org, owner, pending_invitation):
    client.force_login(owner)
    invitation = pending_invitation.invitation
    url = reverse(
        "invitation_revoke", kwargs={"org_slug": org.slug, "invitation_id": invitation.pk}
    )
    assert "stops working" in client.get(url).content.decode()
    invitation.refresh_from_db()
    assert invitation.revoked_at is None
    client.post(url)
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert "invitation.revoked" in _actions(org)


def test_member_sees_the_list_without_management_controls(client, org, owner, member):
    client.force_login(member)
    response = client.get(reverse("member_list", kwargs={"org_slug": org.slug}))
    assert response.status_code == 200
    body = response.content.decode()
    assert owner.email in body
    assert "Invite a colleague" not in body
    assert "/remove/" not in body


def test_staff_reading_members_is_read_only_and_audited(client, org, owner, account_manager):
    client.force_login(account_manager)
    url = reverse("member_list", kwargs={"org_slug": org.slug})
    response = client.get(url)
    assert response.status_code == 200
    assert "Staff view" in response.content.decode()
    event = AuditEvent.objects.for_organization(org).get(action="staff.accessed")
    assert event.actor == account_manager and event.actor_is_staff
    assert event.changes["path"] == url
    before = db_snapshot()
    assert client.post(url, {"email": "x@example.com", "role": "member"}).status_code == 403
    assert db_snapshot() == before
    # Once a session: a second page view adds no row.
    client.get(reverse("organization_settings", kwargs={"org_slug": org.slug}))
    assert AuditEvent.objects.for_organization(org).filter(action="staff.accessed").count() == 1


MEMBER_LIST_QUERIES = 8  # with the count of members for the pages


def test_member_list_query_count_is_flat(client, org, owner, django_assert_num_queries):
    from accounts.services import invitation_create

    client.force_login(owner)
    url = reverse("member_list", kwargs={"org_slug": org.slug})
    for i in range(3):
        make_member(org, Role.MEMBER, email=f"a{i}@acme.example")
        invitation_create(organization=org, email=f"i{i}@x.io", role="member", invited_by=owner)
    with django_assert_num_queries(MEMBER_LIST_QUERIES):
        assert client.get(url).status_code == 200
    for i in range(30):
        make_member(org, Role.VIEWER, email=f"b{i}@acme.example")
        invitation_create(organization=org, email=f"j{i}@x.io", role="viewer", invited_by=owner)
    with django_assert_num_queries(MEMBER_LIST_QUERIES):
        assert client.get(url).status_code == 200


def test_members_come_25_a_page_in_email_order(client, org, owner, member):
    for i in range(30):
        make_member(org, Role.VIEWER, email=f"m{i:02d}@acme.example")
    emails = sorted(Membership.objects.for_organization(org).values_list("user__email", flat=True))
    assert len(emails) == 32
    client.force_login(owner)
    url = reverse("member_list", kwargs={"org_slug": org.slug})

    first = client.get(url)
    second = client.get(url, {"page": 2})

    assert [m.user.email for m in first.context["memberships"]] == emails[:25]
    assert [m.user.email for m in second.context["memberships"]] == emails[25:]
    first_page, second_page = first.content.decode(), second.content.decode()
    assert "Page 1 of 2" in first_page and 'href="?page=2" rel="next"' in first_page
    assert emails[25] not in first_page
    assert "Page 2 of 2" in second_page and 'href="?page=1" rel="prev"' in second_page
    assert emails[24] not in second_page
    assert client.get(url, {"page": 3}).status_code == 404


def test_a_refused_invitation_shows_the_first_page_of_members(client, org, owner):
    for i in range(30):
        make_member(org, Role.VIEWER, email=f"m{i:02d}@acme.example")
    client.force_login(owner)
    url = reverse("member_list", kwargs={"org_slug": org.slug})
    response = client.post(url, {"email": "not-an-email", "role": Role.MEMBER})
    assert response.status_code == 400
    assert "email" in response.context["invite_form"].errors
    assert len(response.context["memberships"]) == 25
    assert "Page 1 of 2" in response.content.decode()
