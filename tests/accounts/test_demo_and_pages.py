"""Demo data, the organization switcher, the home redirect and allauth's own pages."""

import re

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from django.core import mail
from django.urls import reverse

from accounts import demo
from accounts.models import Membership, Organization, Role, StaffRole, User
from tests.conftest import enable_totp
from tests.factories import MembershipFactory, OrganizationFactory

from .conftest import db_snapshot, totp_code

pytestmark = pytest.mark.django_db


def test_demo_seed_creates_the_people_and_organizations():
    demo.seed()
    acme = Organization.objects.get(slug="acme")
    globex = Organization.objects.get(slug="globex")
    manager = User.objects.get(email="manager@provider.example")
    assert manager.staff_role == StaffRole.ACCOUNT_MANAGER
    assert acme.account_manager == manager and globex.account_manager == manager
    planner = User.objects.get(email="planner@provider.example")
    assert planner.staff_role == StaffRole.CAPACITY_PLANNER
    # Provider staff may use the admin (the catalog lives there); customers may not.
    assert manager.is_staff and planner.is_staff
    assert not User.objects.get(email="owner@acme.example").is_staff
    admin = User.objects.get(email="admin@provider.example")
    assert admin.is_superuser and admin.is_staff
    roles = {
        (m.organization.slug, m.user.email): m.role
        for m in Membership.objects.unscoped_for_staff().select_related("organization", "user")
    }
    assert roles == {
        ("acme", "owner@acme.example"): Role.OWNER,
        ("acme", "dev@acme.example"): Role.MEMBER,
        ("globex", "owner@globex.example"): Role.OWNER,
    }
    for email in demo.DEMO_LOGINS:
        user = User.objects.get(email=email)
        assert user.check_password("portal-demo-pass")
        assert EmailAddress.objects.get(user=user).verified
    for email in ("manager@provider.example", "planner@provider.example", "admin@provider.example"):
        authenticator = Authenticator.objects.get(user__email=email, type=Authenticator.Type.TOTP)
        assert TOTP(authenticator).validate_code(totp_code("JBSWY3DPEHPK3PXP"))


def test_demo_seed_twice_changes_nothing():
    demo.seed()
    before = db_snapshot()
    assert demo.seed() == "organizations, people and staff already in place"
    assert db_snapshot() == before


def test_demo_manager_logs_in_with_password_and_totp(client):
    demo.seed()
    client.post(
        reverse("account_login"),
        {"login": "manager@provider.example", "password": "portal-demo-pass"},
    )
    client.post(reverse("mfa_authenticate"), {"code": totp_code("JBSWY3DPEHPK3PXP")})
    response = client.get(reverse("staff_home"))
    assert response.status_code == 200
    assert "Acme" in response.content.decode()


def test_switcher_lists_every_organization_of_a_user(client, org, other_org, owner):
    MembershipFactory(organization=other_org, user=owner, role=Role.VIEWER)
    client.force_login(owner)
    body = client.get(reverse("member_list", kwargs={"org_slug": org.slug})).content.decode()
    switcher = body[body.index('class="org-switcher') : body.index("</details>")]
    assert "/o/acme/" in switcher and "/o/globex/" in switcher
    assert 'aria-current="page">Acme' in switcher


def test_switcher_shows_staff_the_organizations_they_manage(
    client, org, other_org, account_manager
):
    OrganizationFactory(slug="initech", name="Initech")
    client.force_login(account_manager)
    body = client.get(reverse("staff_home")).content.decode()
    switcher = body[body.index('class="org-switcher') : body.index("</details>")]
    assert "Managed by you" in switcher
    assert "/o/acme/" in switcher
    assert "/o/globex/" not in switcher and "/o/initech/" not in switcher


def test_home_sends_a_single_org_user_to_it_and_others_to_a_choice(client, org, other_org, owner):
    client.force_login(owner)
    assert client.get("/")["Location"] == reverse("org_dashboard", kwargs={"org_slug": "acme"})
    MembershipFactory(organization=other_org, user=owner)
    response = client.get("/")
    assert response.status_code == 200
    assert "Your organizations" in response.content.decode()


def test_sign_up_requires_email_verification(client, db):
    response = client.post(
        reverse("account_signup"),
        {
            "email": "fresh@example.com",
            "password1": "a-long-pass-phrase-1",
            "password2": "a-long-pass-phrase-1",
        },
    )
    assert response["Location"] == reverse("account_email_verification_sent")
    assert "_auth_user_id" not in client.session
    link = re.search(r"http://testserver(/accounts/confirm-email/[^\s]+)", mail.outbox[-1].body)
    assert link, mail.outbox[-1].body
    client.post(link.group(1))
    assert EmailAddress.objects.get(email="fresh@example.com").verified


def test_sign_up_rejects_a_malformed_email(client, db):
    response = client.post(
        reverse("account_signup"),
        {"email": "fresh@@example", "password1": "a-long-pass-1", "password2": "a-long-pass-1"},
    )
    assert response.status_code == 200
    assert "email" in response.context["form"].errors
    assert not User.objects.exists()


def test_password_reset_by_email(client, owner):
    client.post(reverse("account_reset_password"), {"email": owner.email})
    link = re.search(
        r"http://testserver(/accounts/password/reset/key/[^\s]+)", mail.outbox[-1].body
    )
    assert link, mail.outbox[-1].body
    page = client.get(link.group(1), follow=True)
    action = page.redirect_chain[-1][0] if page.redirect_chain else link.group(1)
    client.post(action, {"password1": "a-brand-new-phrase-9", "password2": "a-brand-new-phrase-9"})
    owner.refresh_from_db()
    assert owner.check_password("a-brand-new-phrase-9")


@pytest.mark.parametrize(
    "url_name",
    [
        "account_login",
        "account_signup",
        "account_reset_password",
    ],
)
def test_entrance_pages_use_the_portal_layout(client, db, url_name):
    response = client.get(reverse(url_name))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'class="entrance"' in body and 'class="field' in body
    assert "style=" not in body


def test_mfa_pages_render_in_the_portal_layout(client, owner):
    enable_totp(owner)
    client.post(
        reverse("account_login"), {"login": owner.email, "password": "correct-horse-battery-staple"}
    )
    page = client.get(reverse("mfa_authenticate"))
    assert 'class="entrance"' in page.content.decode()
    client.post(reverse("mfa_authenticate"), {"code": totp_code()})
    client.post(reverse("account_reauthenticate"), {"password": "correct-horse-battery-staple"})
    for name in ("mfa_index", "mfa_generate_recovery_codes"):
        response = client.get(reverse(name))
        assert response.status_code == 200, name
        assert 'class="manage"' in response.content.decode()
    client.post(reverse("mfa_generate_recovery_codes"))
    response = client.get(reverse("mfa_view_recovery_codes"))
    assert response.status_code == 200
    assert 'class="manage"' in response.content.decode()


def test_404_and_403_pages_explain_in_the_portal_layout(client, org, other_org, owner, viewer):
    client.force_login(owner)
    response = client.get(reverse("member_list", kwargs={"org_slug": other_org.slug}))
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
    assert "css/portal.css" in response.content.decode()
    client.force_login(viewer)
    response = client.post(
        reverse("member_list", kwargs={"org_slug": org.slug}), {"email": "x@example.com"}
    )
    assert response.status_code == 403
    assert "Your role in this organization does not allow this." in response.content.decode()


def test_switcher_stays_short_for_staff_who_see_every_organization(
    client, capacity_planner, django_assert_max_num_queries
):
    for i in range(30):
        OrganizationFactory(slug=f"tenant-{i:02d}", name=f"Tenant {i:02d}")
    client.force_login(capacity_planner)
    body = client.get(reverse("staff_home")).content.decode()
    switcher = body[body.index('class="org-switcher') : body.index("</details>")]
    assert switcher.count("/o/tenant-") == 25
    assert 'href="/staff/organizations/">All organizations' in switcher
