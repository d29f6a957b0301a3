"""Invitation links: sign up or log in, land in the organization; bad links change nothing."""

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, Invitation, Membership, Role, User
from accounts.services import invitation_create
from tests.factories import PASSWORD, UserFactory

from .conftest import db_snapshot, invitation_path_from_mail

pytestmark = pytest.mark.django_db


def _issue(org, owner, email="invitee@example.com", role=Role.ADMIN):
    return invitation_create(organization=org, email=email, role=role, invited_by=owner)


def test_invited_address_signs_up_through_allauth_and_lands_in_the_organization(
    client, org, owner, django_capture_on_commit_callbacks
):
    owner_client = client.__class__()
    owner_client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            reverse("member_list", kwargs={"org_slug": org.slug}),
            {"email": "newcomer@example.com", "role": Role.BILLING},
        )
    link = invitation_path_from_mail()

    landing = client.get(link)
    assert landing.status_code == 200
    assert "Create an account" in landing.content.decode()

    response = client.post(
        reverse("account_signup"),
        {
            "email": "newcomer@example.com",
            "password1": "a-long-pass-phrase-1",
            "password2": "a-long-pass-phrase-1",
        },
        follow=True,
    )
    user = User.objects.get(email="newcomer@example.com")
    membership = Membership.objects.for_organization(org).get(user=user)
    assert membership.role == Role.BILLING
    assert EmailAddress.objects.get(user=user).verified
    assert response.redirect_chain[-1][0] == reverse("org_dashboard", kwargs={"org_slug": org.slug})
    invitation = Invitation.objects.for_organization(org).get()
    assert invitation.accepted_by == user
    event = AuditEvent.objects.for_organization(org).get(action="invitation.accepted")
    assert event.changes["role"] == Role.BILLING
    # The link worked once.
    assert client.get(link).status_code == 410


def test_existing_user_logs_in_and_confirms(client, org, owner):
    invitee = UserFactory(email="invitee@example.com")
    issued = _issue(org, owner)
    landing = client.get(issued.path)
    assert "Sign in to accept" in landing.content.decode()
    response = client.post(
        reverse("account_login"), {"login": invitee.email, "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == issued.path
    assert "Join Acme?" in response.content.decode()
    assert not Membership.objects.for_organization(org).filter(user=invitee).exists()
    client.post(issued.path)
    assert Membership.objects.for_organization(org).get(user=invitee).role == Role.ADMIN


def test_expired_link_gives_a_clear_message_and_changes_nothing(client, org, owner):
    issued = _issue(org, owner)
    Invitation.all_objects.filter(pk=issued.invitation.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    invitee = UserFactory(email="invitee@example.com")
    client.force_login(invitee)
    before = db_snapshot()
    for method in (client.get, client.post):
        response = method(issued.path)
        assert response.status_code == 410
        assert "This invitation has expired" in response.content.decode()
    assert db_snapshot() == before


def test_reused_link_gives_a_clear_message_and_changes_nothing(client, org, owner):
    issued = _issue(org, owner)
    invitee = UserFactory(email="invitee@example.com")
    client.force_login(invitee)
    client.post(issued.path)
    before = db_snapshot()
    response = client.post(issued.path)
    assert response.status_code == 410
    assert "already been used" in response.content.decode()
    assert db_snapshot() == before


def test_revoked_and_replaced_links_no_longer_work(client, org, owner):
    first = _issue(org, owner)
    second = _issue(org, owner)  # replaces the first
    response = client.get(first.path)
    assert response.status_code == 410
    assert "withdrawn or replaced" in response.content.decode()
    assert client.get(second.path).status_code == 200


def test_unknown_link_is_404(client, db):
    response = client.get(reverse("invitation_accept", kwargs={"token": "no-such-token"}))
    assert response.status_code == 404
    assert "not valid" in response.content.decode()


def test_signed_in_as_someone_else_cannot_accept(client, org, owner, other_owner):
    issued = _issue(org, owner)
    client.force_login(other_owner)
    page = client.get(issued.path)
    assert "but you are signed in as owner@globex.example" in page.content.decode()
    before = db_snapshot()
    response = client.post(issued.path)
    assert response.status_code == 403
    assert db_snapshot() == before


def test_sign_up_from_the_link_with_another_address_keeps_the_invited_one_as_primary(
    client, org, owner
):
    """allauth makes the address the link proved (stashed as verified) the primary one."""
    issued = _issue(org, owner)
    client.get(issued.path)
    response = client.post(
        reverse("account_signup"),
        {
            "email": "someone.else@example.com",
            "password1": "a-long-pass-phrase-1",
            "password2": "a-long-pass-phrase-1",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(email="invitee@example.com")
    addresses = dict(EmailAddress.objects.filter(user=user).values_list("email", "verified"))
    assert addresses == {"invitee@example.com": True, "someone.else@example.com": False}
    assert Membership.objects.for_organization(org).get(user=user).role == Role.ADMIN


def test_sign_up_without_the_link_does_not_join(client, org, owner):
    issued = _issue(org, owner)
    response = client.post(
        reverse("account_signup"),
        {
            "email": "invitee@example.com",
            "password1": "a-long-pass-phrase-1",
            "password2": "a-long-pass-phrase-1",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(email="invitee@example.com")
    # Not verified (the link was never opened): no membership until the link is followed.
    assert not EmailAddress.objects.get(user=user).verified
    assert not Membership.objects.for_organization(org).filter(user=user).exists()
    invitation = Invitation.objects.for_organization(org).get(pk=issued.invitation.pk)
    assert invitation.accepted_at is None
