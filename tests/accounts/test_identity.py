"""Login, throttling, staff MFA, organization-required MFA, admin login through allauth."""

import pytest
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse

from accounts.models import AuditEvent, StaffRole
from tests.conftest import enable_totp
from tests.factories import PASSWORD, UserFactory

from .conftest import TOTP_SECRET, totp_code

pytestmark = pytest.mark.django_db

MFA_SETUP = "/accounts/2fa/totp/activate/"


def _login(client, email, password=PASSWORD):
    return client.post(reverse("account_login"), {"login": email, "password": password})


def test_login_is_recorded_in_each_organizations_audit_log(client, org, other_org, owner):
    from tests.factories import MembershipFactory

    MembershipFactory(organization=other_org, user=owner)
    response = _login(client, owner.email)
    assert response.status_code == 302
    for organization in (org, other_org):
        event = AuditEvent.objects.for_organization(organization).get(action="user.logged_in")
        assert event.actor == owner
        assert event.ip_address == "127.0.0.1"


def test_repeated_failed_logins_are_throttled(client, org, owner):
    assert settings.CACHES["default"]["KEY_PREFIX"].startswith("test:")
    for _ in range(5):
        response = _login(client, owner.email, "wrong-password")
        assert "Too many failed login attempts" not in response.content.decode()
    response = _login(client, owner.email, "wrong-password")
    assert "Too many failed login attempts" in response.content.decode()
    # Even the right password is refused while throttled, and nobody is logged in.
    response = _login(client, owner.email)
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # The counters live under this worker's own prefix.
    if hasattr(cache, "keys"):
        assert cache.keys("*")


def test_malformed_login_email_gets_a_clear_error(client, db):
    response = _login(client, "not-an-email")
    assert response.status_code == 200
    assert "login" in response.context["form"].errors


def test_staff_log_in_with_password_then_totp_and_reach_staff_pages(client, account_manager):
    response = _login(client, account_manager.email)
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_authenticate")
    # Password alone is not a login.
    assert client.get(reverse("staff_home")).status_code == 302
    assert "_auth_user_id" not in client.session
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code()})
    assert response.status_code == 302
    assert client.get(reverse("staff_home")).status_code == 200
    event = AuditEvent.all_objects.filter(action="user.logged_in", actor=account_manager).get()
    assert event.organization is None and event.actor_is_staff


def test_staff_with_a_wrong_totp_code_is_not_logged_in(client, account_manager):
    _login(client, account_manager.email)
    response = client.post(reverse("mfa_authenticate"), {"code": "000000"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("path", ["/staff/", "/admin/", "/o/acme/", "/o/acme/members/", "/"])
def test_staff_without_totp_are_sent_to_mfa_setup(client, org, path):
    staff = UserFactory(staff_role=StaffRole.CAPACITY_PLANNER, is_staff=True)
    response = _login(client, staff.email)
    assert response.status_code == 302
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == MFA_SETUP


def _reauthenticate(client, password=PASSWORD):
    response = client.post(reverse("account_reauthenticate"), {"password": password})
    assert response.status_code == 302


def test_staff_without_totp_set_it_up_and_then_get_in(client, db):
    staff = UserFactory(staff_role=StaffRole.ACCOUNT_MANAGER)
    response = _login(client, staff.email)
    page = client.get(response["Location"], follow=True)
    assert "Provider staff must set up two-factor authentication" in page.content.decode()
    _reauthenticate(client)  # allauth asks for the password again before adding an authenticator
    page = client.get(MFA_SETUP)
    assert page.status_code == 200
    secret = page.context["form"].secret
    response = client.post(MFA_SETUP, {"code": totp_code(secret)})
    assert response.status_code == 302
    assert Authenticator.objects.filter(user=staff, type=Authenticator.Type.TOTP).exists()
    assert client.get(reverse("staff_home")).status_code == 200


def test_staff_cannot_deactivate_totp(client, account_manager):
    _login(client, account_manager.email)
    client.post(reverse("mfa_authenticate"), {"code": totp_code()})
    _reauthenticate(client)
    response = client.post(reverse("mfa_deactivate_totp"))
    assert response.status_code == 200
    assert "provider staff accounts cannot switch it off" in response.content.decode()
    assert Authenticator.objects.filter(user=account_manager, type=Authenticator.Type.TOTP).exists()


def test_customers_can_deactivate_totp(client, org, owner):
    enable_totp(owner)
    _login(client, owner.email)
    client.post(reverse("mfa_authenticate"), {"code": totp_code()})
    _reauthenticate(client)
    response = client.post(reverse("mfa_deactivate_totp"))
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=owner, type=Authenticator.Type.TOTP).exists()


def test_organization_requiring_mfa_sends_members_without_it_to_setup(client, org, owner, member):
    org.require_mfa = True
    org.save()
    client.force_login(member)
    response = client.get(reverse("member_list", kwargs={"org_slug": org.slug}))
    assert response.status_code == 302
    assert response["Location"] == MFA_SETUP
    enable_totp(member, TOTP_SECRET)
    assert client.get(reverse("member_list", kwargs={"org_slug": org.slug})).status_code == 200


def test_owner_turns_on_require_mfa_in_settings(client, org, owner):
    enable_totp(owner)
    client.force_login(owner)
    url = reverse("organization_settings", kwargs={"org_slug": org.slug})
    response = client.post(url, {"name": "Acme", "time_zone": "Europe/Berlin", "require_mfa": "on"})
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.require_mfa and org.time_zone == "Europe/Berlin"
    event = AuditEvent.objects.for_organization(org).get(action="organization.settings_changed")
    assert event.changes == {"require_mfa": [False, True], "time_zone": ["UTC", "Europe/Berlin"]}


def test_settings_reject_an_unknown_time_zone(client, org, owner):
    client.force_login(owner)
    url = reverse("organization_settings", kwargs={"org_slug": org.slug})
    response = client.post(url, {"name": "Acme", "time_zone": "Mars/Olympus"})
    assert response.status_code == 400
    assert "time_zone" in response.context["form"].errors
    org.refresh_from_db()
    assert org.time_zone == "UTC"


def test_django_admin_login_goes_through_allauth(client, db):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    superuser = UserFactory(is_superuser=True, is_staff=True)
    enable_totp(superuser)
    client.force_login(superuser)
    assert client.get("/admin/").status_code == 200


def test_login_page_is_styled_and_has_no_inline_script_or_style(client, db):
    response = client.get(reverse("account_login"))
    body = response.content.decode()
    assert 'class="entrance"' in body
    assert "css/portal.css" in body
    assert "style=" not in body and "onclick" not in body
    assert "<script>" not in body
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_signed_in_customer_gets_403_not_the_admin_login_form(client, org, owner):
    client.force_login(owner)
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 403
    assert b'name="password"' not in response.content
