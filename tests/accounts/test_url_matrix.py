"""Tests generated from the URL resolver: a new route fails here until it is covered.

Every route carrying ``org_slug`` is requested by a member of another organization (404, nothing
changes), by every tenant role and staff role (403 exactly when the capability table says no),
and every /staff/ route by a tenant user (404).
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.apikeys import api_key_create_for_organization
from accounts.models import Role, StaffRole
from accounts.permissions import role_has, staff_role_has
from accounts.views_base import OrganizationViewMixin
from tests.conftest import make_member
from tests.factories import UserFactory

from .conftest import db_snapshot

CONVERTER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
DUMMY_ID = 2_147_483_000


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


ALL_ROUTES = list(_walk(get_resolver().url_patterns))
ORG_ROUTES = [(route, p) for route, p in ALL_ROUTES if "org_slug" in route]
BROWSER_ORG_ROUTES = [(route, p) for route, p in ORG_ROUTES if not route.startswith("api/")]
STAFF_ROUTES = [(route, p) for route, p in ALL_ROUTES if route.startswith("staff/")]


def _view_class(pattern: URLPattern):
    return getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)


def _declared_methods(pattern: URLPattern) -> dict[str, str]:
    view_class = _view_class(pattern)
    return dict(getattr(view_class, "permission_map", {}) or {})


def _methods(pattern: URLPattern) -> set[str]:
    """GET and POST always, plus what the view declares (permission map or DRF actions)."""
    declared = set(_declared_methods(pattern))
    declared |= {m.upper() for m in getattr(pattern.callback, "actions", {}) or {}}
    return ({"GET", "POST"} | declared) - {"HEAD", "OPTIONS"}


def _object_id_for(stem: str, organization) -> int:
    """The id of a real object of ``organization`` whose model is named like ``stem``."""
    stem = stem.removesuffix("_id").replace("_", "").replace("-", "").lower()
    candidates = {stem, stem.removesuffix("s"), stem.removesuffix("es")}
    for model in apps.get_models():
        model_name = model._meta.model_name
        if not any(
            model_name == c or model_name.endswith(c) or c in model_name for c in candidates
        ):
            continue
        if "organization" not in {f.name for f in model._meta.get_fields()}:
            continue
        obj = model._base_manager.filter(organization=organization).order_by("pk").first()
        if obj is not None:
            return obj.pk
    return DUMMY_ID


REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>[^)]*\)")


def build_path(route: str, organization) -> str:
    """A concrete path for ``route``: the organization's slug, ids of its real objects."""

    def value(name: str, converter: str, before: str) -> str:
        if name == "org_slug":
            return organization.slug
        if name == "format":
            return "json"
        if converter == "uuid":
            return str(uuid.UUID(int=1))
        if converter == "int" or name.endswith("_id") or name in ("pk", "id"):
            stem = name
            if name in ("pk", "id"):
                segment = re.search(r"([\w-]+)/$", before)
                stem = segment.group(1) if segment else name
            return str(_object_id_for(stem, organization))
        return "x"

    def fill_regex(match: re.Match) -> str:
        before = route[: match.start()].replace("^", "")
        return value(match.group("name"), "str", before)

    # Regex groups first: their (?P<name>...) would otherwise look like a path converter.
    path = REGEX_GROUP.sub(fill_regex, route)

    def fill_route(match: re.Match) -> str:
        converter = match.group("converter") or "str"
        return value(match.group("name"), converter, path[: match.start()])

    path = CONVERTER.sub(fill_route, path)
    path = path.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")
    return "/" + path


@pytest.fixture
def acme_world(org, other_org, owner, member, other_owner, pending_invitation, account_manager):
    """Acme with a member of every role, an open invitation and an account manager."""
    for role in (Role.ADMIN, Role.BILLING, Role.VIEWER):
        make_member(org, role, email=f"{role}@acme.example")
    api_key_create_for_organization(organization=org, name="CI", scopes=["read"], created_by=owner)
    return org


def test_the_resolver_has_organization_routes():
    routes = {route for route, _ in BROWSER_ORG_ROUTES}
    assert "o/<slug:org_slug>/members/" in routes
    assert "o/<slug:org_slug>/audit/" in routes
    assert STAFF_ROUTES


@pytest.mark.parametrize(
    ("route", "pattern"), BROWSER_ORG_ROUTES, ids=[r for r, _ in BROWSER_ORG_ROUTES]
)
def test_every_organization_page_resolves_the_organization_in_the_base_view(route, pattern):
    view_class = _view_class(pattern)
    assert view_class is not None and issubclass(view_class, OrganizationViewMixin), route
    methods = _declared_methods(pattern)
    assert methods, f"{route} declares no permission_map"


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "pattern"), ORG_ROUTES, ids=[r for r, _ in ORG_ROUTES])
def test_member_of_another_organization_gets_404_and_changes_nothing(
    client, acme_world, other_owner, route, pattern
):
    path = build_path(route, acme_world)
    client.force_login(other_owner)
    before = db_snapshot()
    for method in sorted(_methods(pattern)):
        response = client.generic(method, path)
        assert response.status_code == 404, f"{method} {path}: {response.status_code}"
    assert db_snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "pattern"), ORG_ROUTES, ids=[r for r, _ in ORG_ROUTES])
def test_anonymous_visitor_never_reaches_an_organization_page(client, acme_world, route, pattern):
    path = build_path(route, acme_world)
    before = db_snapshot()
    for method in ("GET", "POST"):
        response = client.generic(method, path)
        assert response.status_code in (302, 401, 403, 404), f"{method} {path}"
        if response.status_code == 302:
            assert response["Location"].startswith("/accounts/login/")
    assert db_snapshot() == before


TENANT_ROLES = [r.value for r in Role]
STAFF_ROLES = [StaffRole.ACCOUNT_MANAGER.value, StaffRole.CAPACITY_PLANNER.value]


def _role_cases():
    for route, pattern in BROWSER_ORG_ROUTES:
        for method, capability in sorted(_declared_methods(pattern).items()):
            if method == "HEAD":
                continue
            for role in TENANT_ROLES + STAFF_ROLES:
                yield pytest.param(route, method, capability, role, id=f"{route}-{method}-{role}")


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "method", "capability", "role"), list(_role_cases()))
def test_each_role_can_do_exactly_what_the_capability_table_says(
    client, acme_world, route, method, capability, role
):
    if role in TENANT_ROLES:
        user = make_member(acme_world, role) if role != Role.OWNER else None
        if user is None:
            from accounts.models import Membership

            user = (
                Membership.objects.for_organization(acme_world)
                .select_related("user")
                .get(role=Role.OWNER)
                .user
            )
        allowed = role_has(role, capability)
    else:
        from tests.conftest import enable_totp

        user = UserFactory(staff_role=role)
        enable_totp(user)
        if role == StaffRole.ACCOUNT_MANAGER:
            acme_world.account_manager = user
            acme_world.save()
        allowed = staff_role_has(role, capability)
    client.force_login(user)
    response = client.generic(method, build_path(route, acme_world))
    if allowed:
        assert response.status_code not in (403, 405), (role, method, response.status_code)
        assert response.status_code < 500
    else:
        assert response.status_code == 403, (role, method, response.status_code)


@pytest.mark.django_db
def test_account_manager_of_another_organization_gets_404(client, acme_world, other_org):
    from tests.conftest import enable_totp

    stranger = UserFactory(staff_role=StaffRole.ACCOUNT_MANAGER)
    enable_totp(stranger)
    other_org.account_manager = stranger
    other_org.save()
    client.force_login(stranger)
    for route, _ in BROWSER_ORG_ROUTES:
        assert client.get(build_path(route, acme_world)).status_code == 404, route


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "pattern"), STAFF_ROUTES, ids=[r for r, _ in STAFF_ROUTES])
def test_staff_pages_are_404_for_tenant_users(client, acme_world, owner, route, pattern):
    path = build_path(route, acme_world)
    client.force_login(owner)
    before = db_snapshot()
    for method in ("GET", "POST"):
        assert client.generic(method, path).status_code == 404, f"{method} {path}"
    assert db_snapshot() == before


# What the account pages are meant to require; the matrix above proves each view enforces it.
ACCOUNT_PAGE_CAPABILITIES = {
    "member_list": {"GET": "members.view", "POST": "members.manage"},
    "member_role": {"POST": "members.manage"},
    "member_remove": {"GET": "members.manage", "POST": "members.manage"},
    "organization_leave": {"GET": "org.leave", "POST": "org.leave"},
    "invitation_revoke": {"GET": "members.manage", "POST": "members.manage"},
    "organization_settings": {"GET": "org.view", "POST": "org.manage"},
    "audit_log": {"GET": "audit.view"},
    "api_key_list": {"GET": "api_keys.manage", "POST": "api_keys.manage"},
    "api_key_revoke": {"GET": "api_keys.manage", "POST": "api_keys.manage"},
}


def test_account_pages_declare_the_intended_capabilities():
    declared = {
        pattern.name: {m: c for m, c in _declared_methods(pattern).items() if m != "HEAD"}
        for _, pattern in BROWSER_ORG_ROUTES
        if pattern.name in ACCOUNT_PAGE_CAPABILITIES
    }
    assert declared == ACCOUNT_PAGE_CAPABILITIES


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "pattern"), STAFF_ROUTES, ids=[r for r, _ in STAFF_ROUTES])
def test_staff_without_mfa_cannot_reach_staff_pages(client, acme_world, route, pattern):
    staff = UserFactory(staff_role=StaffRole.ACCOUNT_MANAGER)  # no authenticator
    acme_world.account_manager = staff
    acme_world.save()
    client.force_login(staff)
    path = build_path(route, acme_world)
    before = db_snapshot()
    for method in ("GET", "POST"):
        response = client.generic(method, path)
        assert response.status_code == 302, f"{method} {path}"
        assert response["Location"] == "/accounts/2fa/totp/activate/"
    assert db_snapshot() == before
