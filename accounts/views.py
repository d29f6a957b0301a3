"""Pages for organizations: members, invitations, settings, API keys, audit log; invitation
links."""

from __future__ import annotations

from datetime import UTC, datetime, time

from allauth.account.adapter import get_adapter as get_account_adapter
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.generic import ListView, TemplateView

from portal.errors import DomainError

from . import apikeys, selectors, services
from .adapters import INVITATION_SESSION_KEY
from .forms import (
    ApiKeyForm,
    AuditFilterForm,
    InvitationForm,
    MembershipRoleForm,
    OrganizationSettingsForm,
)
from .models import ApiKey, Invitation, Membership, Role
from .views_base import OrganizationViewMixin

AUDIT_PAGE_SIZE = 50
MEMBER_PAGE_SIZE = 25


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send a user to where their work is: staff to /staff/, customers to their organization."""
    user = request.user
    if user.is_provider_staff:
        return redirect("staff_home")
    organizations = list(selectors.organization_list_for_user(user=user))
    if len(organizations) == 1:
        return redirect("org_dashboard", org_slug=organizations[0].slug)
    return render(request, "accounts/organization_choose.html", {"organizations": organizations})


class MemberListView(OrganizationViewMixin, ListView):
    """Members, a page at a time, and pending invitations; owners and admins invite (POST)
    from here."""

    template_name = "accounts/member_list.html"
    context_object_name = "memberships"
    paginate_by = MEMBER_PAGE_SIZE
    permission_map = {"GET": "members.view", "HEAD": "members.view", "POST": "members.manage"}

    def get_queryset(self):
        return selectors.membership_list(organization=self.organization)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        can_manage = self.access.can("members.manage")
        context["can_manage"] = can_manage
        context["actor_is_owner"] = self.access.role == Role.OWNER
        context["invitations"] = (
            selectors.invitation_list_pending(organization=self.organization) if can_manage else []
        )
        context.setdefault("invite_form", InvitationForm(actor_role=self.access.role))
        context["role_choices"] = Role.choices
        context["invitation_ttl_hours"] = settings.INVITATION_TTL_HOURS
        return context

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        form = InvitationForm(request.POST, actor_role=self.access.role)
        if form.is_valid():
            try:
                issued = services.invitation_create(
                    organization=self.organization,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    invited_by=request.user,
                    request=request,
                )
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Invitation sent to {issued.invitation.email}.")
                return redirect("member_list", org_slug=self.organization.slug)
        self.object_list = self.get_queryset()
        return self.render_to_response(self.get_context_data(invite_form=form), status=400)


class _MembershipMixin(OrganizationViewMixin):
    """Loads the membership named in the URL, inside the organization only."""

    def get_membership(self) -> Membership:
        membership = (
            selectors.membership_list(organization=self.organization)
            .filter(pk=self.kwargs["membership_id"])
            .first()
        )
        if membership is None:
            raise Http404("No such member.")
        return membership


class MemberRoleView(_MembershipMixin, TemplateView):
    """POST a new role for a member (owners and admins; only owners touch the owner role)."""

    permission_map = {"POST": "members.manage"}

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        membership = self.get_membership()
        form = MembershipRoleForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose one of the listed roles.")
            return redirect("member_list", org_slug=self.organization.slug)
        try:
            membership = services.membership_change_role(
                membership=membership,
                role=form.cleaned_data["role"],
                actor=request.user,
                request=request,
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request, f"{membership.user.email} is now {membership.get_role_display()}."
            )
        return redirect("member_list", org_slug=self.organization.slug)


class MemberRemoveView(_MembershipMixin, TemplateView):
    """GET asks for confirmation; POST removes the member."""

    template_name = "accounts/membership_confirm_remove.html"
    permission_map = {"GET": "members.manage", "HEAD": "members.manage", "POST": "members.manage"}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["membership"] = self.get_membership()
        return context

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        membership = self.get_membership()
        try:
            services.membership_remove(membership=membership, actor=request.user, request=request)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("member_list", org_slug=self.organization.slug)
        if membership.user_id == request.user.pk:
            messages.success(request, f"You left {self.organization.name}.")
            return redirect("home")
        messages.success(request, f"{membership.user.email} was removed.")
        return redirect("member_list", org_slug=self.organization.slug)


class OrganizationLeaveView(OrganizationViewMixin, TemplateView):
    """GET asks for confirmation; POST takes the signed-in member out of the organization."""

    template_name = "accounts/organization_confirm_leave.html"
    permission_map = {"GET": "org.leave", "HEAD": "org.leave", "POST": "org.leave"}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["is_last_owner"] = (
            self.access.role == Role.OWNER
            and selectors.membership_owner_count(organization=self.organization) <= 1
        )
        return context

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        membership = (
            Membership.objects.for_organization(self.organization)
            .select_related("user")
            .get(user=request.user)
        )
        try:
            services.membership_remove(membership=membership, actor=request.user, request=request)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("organization_leave", org_slug=self.organization.slug)
        messages.success(request, f"You left {self.organization.name}.")
        return redirect("home")


class InvitationRevokeView(OrganizationViewMixin, TemplateView):
    """GET asks for confirmation; POST withdraws a pending invitation."""

    template_name = "accounts/invitation_confirm_revoke.html"
    permission_map = {"GET": "members.manage", "HEAD": "members.manage", "POST": "members.manage"}

    def get_invitation(self) -> Invitation:
        invitation = (
            Invitation.objects.for_organization(self.organization)
            .select_related("invited_by")
            .filter(pk=self.kwargs["invitation_id"])
            .first()
        )
        if invitation is None:
            raise Http404("No such invitation.")
        return invitation

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["invitation"] = self.get_invitation()
        return context

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        invitation = self.get_invitation()
        try:
            services.invitation_revoke(invitation=invitation, actor=request.user, request=request)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Invitation of {invitation.email} withdrawn.")
        return redirect("member_list", org_slug=self.organization.slug)


class OrganizationSettingsView(OrganizationViewMixin, TemplateView):
    template_name = "accounts/organization_settings.html"
    permission_map = {"GET": "org.view", "HEAD": "org.view", "POST": "org.manage"}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        can_manage = self.access.can("org.manage")
        context.setdefault(
            "form",
            OrganizationSettingsForm(
                initial={
                    "name": self.organization.name,
                    "time_zone": self.organization.time_zone,
                    "require_mfa": self.organization.require_mfa,
                },
                read_only=not can_manage,
            ),
        )
        context["can_manage"] = can_manage
        return context

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        form = OrganizationSettingsForm(request.POST)
        if form.is_valid():
            try:
                services.organization_update_settings(
                    organization=self.organization,
                    actor=request.user,
                    name=form.cleaned_data["name"],
                    time_zone=form.cleaned_data["time_zone"],
                    require_mfa=form.cleaned_data["require_mfa"],
                    request=request,
                )
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, "Settings saved.")
                return redirect("organization_settings", org_slug=self.organization.slug)
        return self.render_to_response(self.get_context_data(form=form), status=400)


API_KEYS_MANAGE = {"GET": "api_keys.manage", "HEAD": "api_keys.manage", "POST": "api_keys.manage"}


def api_key_state(api_key: ApiKey, *, at) -> str:
    if api_key.revoked_at is not None:
        return "revoked"
    return "active" if api_key.is_usable(at) else "expired"


ONE_TIME_SECRET_SESSION_KEY = "one_time_secret"


def one_time_secret_stash(
    request: HttpRequest, *, kind: str, organization, object_id: int, secret: str = ""
) -> None:
    """Keep what a POST just created for the one GET it redirects to (Post/Redirect/Get): a
    refresh then repeats the GET, never the POST that created it."""
    request.session[ONE_TIME_SECRET_SESSION_KEY] = {
        "kind": kind,
        "organization_id": organization.pk,
        "object_id": object_id,
        "secret": secret,
    }


def one_time_secret_pop(
    request: HttpRequest, *, kind: str, organization, object_id: int | None = None
) -> dict | None:
    """What ``one_time_secret_stash`` kept for this kind of page of this organization, removed
    from the session so a second GET shows nothing; None when there is nothing to show."""
    stashed = request.session.get(ONE_TIME_SECRET_SESSION_KEY)
    if not stashed or stashed.get("kind") != kind:
        return None
    if stashed.get("organization_id") != organization.pk:
        return None
    if object_id is not None and stashed.get("object_id") != object_id:
        return None
    del request.session[ONE_TIME_SECRET_SESSION_KEY]
    return stashed


def no_store(response: HttpResponse) -> HttpResponse:
    # The only copy of a secret: keep it out of every cache and the history.
    response["Cache-Control"] = "no-store"
    return response


class ApiKeyListView(OrganizationViewMixin, TemplateView):
    """The organization's API keys; POST creates one through the service the API uses and
    redirects here, where the next GET shows its secret once (owners and admins)."""

    template_name = "accounts/api_key_list.html"
    permission_map = API_KEYS_MANAGE

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        keys = list(
            ApiKey.objects.for_organization(self.organization)
            .select_related("created_by")
            .order_by("-created_at", "-id")
        )
        for api_key in keys:
            api_key.state = api_key_state(api_key, at=now)
        context["api_keys"] = keys
        context.setdefault("form", ApiKeyForm())
        return context

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        stashed = one_time_secret_pop(request, kind="api_key", organization=self.organization)
        api_key = (
            ApiKey.objects.for_organization(self.organization)
            .filter(pk=stashed["object_id"])
            .first()
            if stashed
            else None
        )
        if api_key is None:
            return super().get(request, *args, **kwargs)
        return no_store(
            self.response_class(
                request=request,
                template="accounts/api_key_secret.html",
                context={
                    **super().get_context_data(**kwargs),
                    "api_key": api_key,
                    "secret": stashed["secret"],
                },
            )
        )

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                issued = apikeys.api_key_create_for_organization(
                    organization=self.organization,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=form.expires_at_instant(),
                    created_by=request.user,
                    request=request,
                )
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                one_time_secret_stash(
                    request,
                    kind="api_key",
                    organization=self.organization,
                    object_id=issued.api_key.pk,
                    secret=issued.key,
                )
                return no_store(
                    redirect("api_key_list", org_slug=self.organization.slug, permanent=False)
                )
        return self.render_to_response(self.get_context_data(form=form), status=400)


class ApiKeyRevokeView(OrganizationViewMixin, TemplateView):
    """GET asks for confirmation; POST revokes the key (its next request gets 401)."""

    template_name = "accounts/api_key_confirm_revoke.html"
    permission_map = API_KEYS_MANAGE

    def get_api_key(self) -> ApiKey:
        api_key = (
            ApiKey.objects.for_organization(self.organization)
            .select_related("created_by")
            .filter(pk=self.kwargs["api_key_id"])
            .first()
        )
        if api_key is None:
            raise Http404("No such API key.")
        return api_key

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["api_key"] = self.get_api_key()
        return context

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        api_key = self.get_api_key()
        if api_key.revoked_at is not None:
            messages.info(request, f"{api_key.name} ({api_key.prefix}) was already revoked.")
        else:
            apikeys.api_key_revoke(api_key=api_key, actor=request.user, request=request)
            messages.success(request, f"{api_key.name} ({api_key.prefix}) is revoked.")
        return redirect("api_key_list", org_slug=self.organization.slug)


class AuditLogView(OrganizationViewMixin, TemplateView):
    template_name = "accounts/audit_log.html"
    permission_map = {"GET": "audit.view", "HEAD": "audit.view"}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        params = self.request.GET.copy()
        params.pop("page", None)
        form = AuditFilterForm(params or None)
        filters: dict = {}
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            filters = {
                "action": data["action"] or None,
                "actor_email": data["actor"] or None,
                "since": datetime.combine(data["since"], time.min, UTC) if data["since"] else None,
                "until": datetime.combine(data["until"], time.min, UTC) if data["until"] else None,
            }
        events = selectors.audit_event_list(organization=self.organization, **filters)
        context["page"] = Paginator(events, AUDIT_PAGE_SIZE).get_page(self.request.GET.get("page"))
        context["filter_form"] = form if form.is_bound else AuditFilterForm()
        context["query"] = params.urlencode()
        return context

    def render_to_response(self, context, **response_kwargs):
        if context["filter_form"].errors:
            response_kwargs.setdefault("status", 400)
        return super().render_to_response(context, **response_kwargs)


# --- Invitation links (no organization in the URL: the token names it) -------------------------
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Landing page of an invitation link: sign up or log in, then confirm joining."""
    try:
        invitation = services.invitation_get_by_token(token=token)
    except DomainError as exc:
        return _invitation_invalid(request, exc)
    if not request.user.is_authenticated:
        request.session[INVITATION_SESSION_KEY] = token
        # The link arrived at this address, so signing up with it needs no second verification.
        get_account_adapter(request).stash_verified_email(request, invitation.email)
        has_account = EmailAddress.objects.filter(email__iexact=invitation.email).exists()
        return render(
            request,
            "accounts/invitation_landing.html",
            {"invitation": invitation, "has_account": has_account},
        )
    if request.method == "POST":
        try:
            membership = services.invitation_accept(token=token, user=request.user, request=request)
        except DomainError as exc:
            return _invitation_invalid(request, exc)
        request.session.pop(INVITATION_SESSION_KEY, None)
        messages.success(request, f"Welcome to {membership.organization.name}.")
        return redirect("org_dashboard", org_slug=membership.organization.slug)
    return render(
        request,
        "accounts/invitation_confirm.html",
        {
            "invitation": invitation,
            "email_matches": invitation.email.lower() == request.user.email.lower(),
        },
    )


def _invitation_invalid(request: HttpRequest, exc: DomainError) -> HttpResponse:
    request.session.pop(INVITATION_SESSION_KEY, None)
    # 404 for an unknown link, 410 for one that was used, withdrawn or expired, 403 otherwise.
    status = {400: 404, 409: 410}.get(exc.status_code, exc.status_code)
    return render(
        request, "accounts/invitation_invalid.html", {"reason": exc.message}, status=status
    )


@login_required
def invitation_resume(request: HttpRequest) -> HttpResponse:
    """After login or sign-up, go back to the invitation that sent the user there."""
    token = request.session.get(INVITATION_SESSION_KEY)
    if not token:
        return redirect("home")
    return redirect(reverse("invitation_accept", kwargs={"token": token}))
