"""Two journeys in headless Chromium under the real Content-Security-Policy, with axe-core on
every page, screenshots in test-artifacts/screenshots/, no console error and no request leaving
the test server:

- an owner invites a colleague by e-mail; the colleague opens the link from the e-mail, signs
  up (or signs in and accepts) and lands in the organization with the invited role;
- an owner creates an API key, copies the secret shown once, uses it against the live API,
  revokes it after a confirmation, and the same key then gets 401.
"""

import re

import pytest
import requests
from django.core import mail

from accounts.models import ApiKey, AuditEvent, Membership, Role
from tests.accounts.conftest import invitation_path_from_mail
from tests.factories import PASSWORD, UserFactory
from tests.quotas.test_pages_browser import Session, browser  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _check(session: Session, name: str) -> None:
    assert session.axe_serious() == [], name
    session.shot(f"journey-{name}")


def _invite(browser, live_server, org, owner, email: str, role_label: str) -> str:  # noqa: F811
    """The owner sends an invitation from the members page; returns the e-mailed link's path."""
    inviter = Session(browser, live_server, owner)
    page = inviter.page
    page.goto(f"{live_server.url}/o/{org.slug}/members/")
    _check(inviter, "members")
    page.get_by_label(re.compile(r"^E-mail address")).fill(email)
    page.locator("#id_role").select_option(label=role_label)
    page.get_by_role("button", name="Send invitation").click()
    page.get_by_text(f"Invitation sent to {email}.").wait_for()
    _check(inviter, "invitation-sent")
    inviter.close()
    assert mail.outbox[-1].to == [email]
    return invitation_path_from_mail()


def test_invited_colleague_signs_up_from_the_email_and_lands_with_the_role(
    browser,  # noqa: F811
    live_server,
    org,
    owner,
):
    link = _invite(browser, live_server, org, owner, "new.colleague@example.com", "Admin")
    assert link.startswith("/invitations/")

    invitee = Session(browser, live_server, None, sign_in=True)
    page = invitee.page
    page.goto(f"{live_server.url}{link}")
    page.get_by_role("heading", name=f"Join {org.name}").wait_for()
    assert "as Admin" in page.locator("main").inner_text()
    _check(invitee, "invitation-landing")
    page.get_by_role("link", name="Create an account").click()
    page.locator("#id_email").wait_for()
    _check(invitee, "signup")
    page.locator("#id_email").fill("new.colleague@example.com")
    page.locator("#id_password1").fill("a-long-pass-phrase-1")
    page.locator("#id_password2").fill("a-long-pass-phrase-1")
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(f"{live_server.url}/o/{org.slug}/")
    page.get_by_role("heading", name=org.name, exact=True).wait_for()
    _check(invitee, "invitee-dashboard")

    membership = Membership.objects.for_organization(org).get(
        user__email="new.colleague@example.com"
    )
    assert membership.role == Role.ADMIN
    page.goto(f"{live_server.url}/o/{org.slug}/members/")
    row = page.get_by_role("row", name=re.compile("new.colleague@example.com"))
    assert re.search(r"Admin", row.inner_text())
    # An admin manages members: the invite form is there for them too.
    page.get_by_role("button", name="Send invitation").wait_for()
    _check(invitee, "invitee-members")
    invitee.close()
    assert AuditEvent.objects.for_organization(org).filter(action="invitation.accepted").exists()


def test_invited_user_with_an_account_signs_in_and_accepts(
    browser,  # noqa: F811
    live_server,
    org,
    owner,
):
    colleague = UserFactory(email="colleague@example.com")
    link = _invite(browser, live_server, org, owner, colleague.email, "Billing")

    invitee = Session(browser, live_server, None, sign_in=True)
    page = invitee.page
    page.goto(f"{live_server.url}{link}")
    page.get_by_role("link", name="Sign in to accept").click()
    page.locator("#id_login").fill(colleague.email)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("form button[type=submit]").first.click()
    page.get_by_role("heading", name=f"Join {org.name}?").wait_for()
    assert not Membership.objects.for_organization(org).filter(user=colleague).exists()
    _check(invitee, "invitation-confirm")
    page.get_by_role("button", name=f"Join {org.name}").click()
    page.get_by_text(f"Welcome to {org.name}.").wait_for()
    assert page.url == f"{live_server.url}/o/{org.slug}/"
    _check(invitee, "invitation-accepted")
    invitee.close()
    assert Membership.objects.for_organization(org).get(user=colleague).role == Role.BILLING


def test_owner_creates_copies_uses_and_revokes_an_api_key(
    browser,  # noqa: F811
    live_server,
    org,
    owner,
):
    session = Session(browser, live_server, owner)
    session.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = session.page
    page.goto(f"{live_server.url}/o/{org.slug}/settings/")
    page.get_by_role("link", name="Manage API keys").click()
    page.get_by_role("heading", name="API keys", exact=True).wait_for()
    assert page.get_by_role("link", name="API keys").first.get_attribute("aria-current") == "page"
    _check(session, "api-keys-empty")

    # A mistake first: the error sits next to its field and what was typed stays.
    page.get_by_label(re.compile(r"^Name")).fill("CI pipeline")
    page.get_by_label(re.compile(r"^Read")).uncheck()
    page.get_by_role("button", name="Create key").click()
    page.get_by_text("Choose at least one scope").wait_for()
    assert page.get_by_label(re.compile(r"^Name")).input_value() == "CI pipeline"
    assert ApiKey.objects.for_organization(org).count() == 0
    # The form answers 400, which the browser logs; that and nothing else went wrong.
    assert session.errors[0] == f"400 {live_server.url}/o/{org.slug}/settings/api-keys/"
    assert all("400" in error for error in session.errors), session.errors
    session.errors.clear()
    _check(session, "api-keys-error")

    page.get_by_label(re.compile(r"^Read")).check()
    page.get_by_label(re.compile(r"^Write")).check()
    page.get_by_role("button", name="Create key").click()
    page.get_by_role("heading", name=re.compile("API key .CI pipeline. created")).wait_for()
    assert "shown only this once" in page.locator("main").inner_text()
    _check(session, "api-key-secret")
    page.get_by_role("button", name="Copy key").click()
    page.get_by_text("Copied").wait_for()
    secret = page.evaluate("() => navigator.clipboard.readText()")
    assert secret == page.locator("#api-key-secret").inner_text().strip()
    assert re.fullmatch(r"gpc_[a-z0-9]{8}_\S+", secret)

    api = f"{live_server.url}/api/v1/orgs/{org.slug}/"
    headers = {"Authorization": f"Bearer {secret}"}
    answer = requests.get(api, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["slug"] == org.slug
    assert requests.get(f"{api}requests/", headers=headers, timeout=10).status_code == 200

    assert page.url == f"{live_server.url}/o/{org.slug}/settings/api-keys/"
    # The secret page came from a redirect: a refresh repeats the GET, which shows the list
    # without the secret, and creates no second key.
    page.reload()
    page.get_by_role("heading", name="API keys", exact=True).wait_for()
    assert page.get_by_role("link", name="I have stored it").count() == 0
    assert page.get_by_role("row", name=re.compile("CI pipeline")).count() == 1
    row = page.get_by_role("row", name=re.compile("CI pipeline"))
    assert "Active" in row.inner_text()
    assert "read, write" in row.inner_text()
    assert secret not in page.content()
    _check(session, "api-keys-list")
    row.get_by_role("link", name=re.compile("Revoke")).click()
    page.get_by_role("heading", name=re.compile("Revoke the API key")).wait_for()
    _check(session, "api-key-revoke-confirm")
    # Asking is not doing: the key still works until the owner confirms.
    assert requests.get(api, headers=headers, timeout=10).status_code == 200
    page.get_by_role("button", name="Revoke key").click()
    page.get_by_text(re.compile(r"CI pipeline \(gpc_\w+\) is revoked\.")).wait_for()
    assert "Revoked" in page.get_by_role("row", name=re.compile("CI pipeline")).inner_text()
    _check(session, "api-keys-revoked")
    session.close()

    refused = requests.get(api, headers=headers, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    actions = list(
        AuditEvent.objects.for_organization(org)
        .filter(action__startswith="api_key.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["api_key.created", "api_key.revoked"]
