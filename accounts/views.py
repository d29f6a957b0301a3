"""Pages for organizations: members, invitations, settings, audit log; invitation links."""

from __future__ import annotations

from datetime import UTC, datetime, time

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.generic import TemplateView

from portal.errors import DomainError

from . import selectors, services
from .adapters import INVITATION_SESSION_KEY
from .forms import AuditFilterForm, InvitationForm, MembershipRoleForm, OrganizationSettingsForm
from .models import Invitation, Membership
from .views_base import OrganizationViewMixin


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send a user to where their work is: staff to /staff/, customers to their organization."""
    user = request.user
    if user.is_provider_staff:
        return redirect("staff_home")
    organizations = list(selectors.organization_list_for_user(user=user)[:2])
    if len(organizations) == 1:
        return redirect("org_dashboard", org_slug=organizations[0].slug)
    return render(
        request,
        "accounts/organization_choose.html",
        {"organizations": selectors.organization_list_for_user(user=user)},
    )


class MemberListView(OrganizationViewMixin, TemplateView):
    template_name = "accounts/member_list.html"
    permission_map = {"GET": "members.view", "POST": "members.manage"}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["memberships"] = selectors.membership_list(organization=self.organization)
        context["can_manage"] = self.access.can("members.manage")
        context["invitations"] = (
            selectors.invitation_list_pending(organization=self.organization)
            if context["can_manage"]
            else []
        )
        context.setdefault("invite_form", InvitationForm())
        context["role_choices"] = Membership._meta.get_field("role").choices
        return context

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        form = InvitationForm(request.POST)
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
        return self.render_to_response(self.get_context_data(invite_form=form), status=400)


class MemberDetailView(OrganizationViewMixin, TemplateView):
    """POST changes a member's role or removes them (members.manage), or lets one leave."""

    permission_map = {"POST": "members.view"}

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        membership = (
            Membership.objects.for_organization(self.organization)
            .select_related("user", "organization")
            .filter(pk=kwargs["membership_id"])
            .first()
        )
        if membership is None:
            raise Http404("No such member.")
        action = request.POST.get("action")
        is_self = membership.user_id == request.user.pk
        if action != "leave" or not is_self:
            if not self.access.can("members.manage"):
                from django.core.exceptions import PermissionDenied

                raise PermissionDenied("Only owners and admins manage members.")
        try:
            if action == "role":
                form = MembershipRoleForm(request.POST)
                if not form.is_valid():
                    raise DomainError("Choose a valid role.", field="role")
                services.membership_change_role(
                    membership=membership,
                    role=form.cleaned_data["role"],
                    actor=request.user,
                    request=request,
                )
                messages.success(
                    request, f"{membership.user.email} is now {form.cleaned_data['role']}."
                )
            elif action in ("remove", "leave"):
                services.membership_remove(
                    membership=membership, actor=request.user, request=request
                )
                if is_self:
                    messages.success(request, f"You left {self.organization.name}.")
                    return redirect("home")
                messages.success(request, f"{membership.user.email} was removed.")
            else:
                raise DomainError("Unknown action.")
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("member_list", org_slug=self.organization.slug)
        return redirect("member_list", org_slug=self.organization.slug)


class InvitationRevokeView(OrganizationViewMixin, TemplateView):
    permission_map = {"POST": "members.manage"}

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        invitation = (
            Invitation.objects.for_organization(self.organization)
            .filter(pk=kwargs["invitation_id"])
            .first()
        )
        if invitation is None:
            raise Http404("No such invitation.")
        try:
            services.invitation_revoke(invitation=invitation, actor=request.user, request=request)
            messages.success(request, f"Invitation of {invitation.email} withdrawn.")
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect("member_list", org_slug=self.organization.slug)


class OrganizationSettingsView(OrganizationViewMixin, TemplateView):
    template_name = "accounts/organization_settings.html"
    permission_map = {"GET": "org.view", "POST": "org.manage"}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault(
            "form",
            OrganizationSettingsForm(
                initial={
                    "name": self.organization.name,
                    "time_zone": self.organization.time_zone,
                    "require_mfa": self.organization.require_mfa,
                }
            ),
        )
        context["can_manage"] = self.access.can("org.manage")
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


class AuditLogView(OrganizationViewMixin, TemplateView):
    template_name = "accounts/audit_log.html"
    permission_map = {"GET": "audit.view"}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = AuditFilterForm(self.request.GET or None)
        filters: dict = {}
        if form.is_valid():
            data = form.cleaned_data
            filters = {
                "action": data["action"] or None,
                "actor_email": data["actor"] or None,
                "since": datetime.combine(data["since"], time.min, UTC) if data["since"] else None,
                "until": datetime.combine(data["until"], time.min, UTC) if data["until"] else None,
            }
        events = selectors.audit_event_list(organization=self.organization, **filters)
        paginator = Paginator(events, 50)
        context["page"] = paginator.get_page(self.request.GET.get("page"))
        context["filter_form"] = form if form.is_bound else AuditFilterForm()
        query = self.request.GET.copy()
        query.pop("page", None)
        context["query"] = query.urlencode()
        return context


# --- Invitation links (no organization in the URL: the token names it) -------------------------
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = services.invitation_get_by_token(token=token)
    except DomainError as exc:
        return render(
            request,
            "accounts/invitation_invalid.html",
            {"reason": exc.message},
            status=410 if exc.status_code == 409 else 404,
        )
    if not request.user.is_authenticated:
        request.session[INVITATION_SESSION_KEY] = token
        from allauth.account.adapter import get_adapter
        from allauth.account.models import EmailAddress

        # The link arrived at this address, so signing up with it needs no second verification.
        get_adapter(request).stash_verified_email(request, invitation.email)
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
            return render(
                request,
                "accounts/invitation_invalid.html",
                {"reason": exc.message},
                status=exc.status_code,
            )
        request.session.pop(INVITATION_SESSION_KEY, None)
        messages.success(request, f"Welcome to {membership.organization.name}.")
        return redirect("org_dashboard", org_slug=membership.organization.slug)
    return render(request, "accounts/invitation_confirm.html", {"invitation": invitation})


@login_required
def invitation_resume(request: HttpRequest) -> HttpResponse:
    """After login or sign-up, go back to the invitation that sent the user there."""
    token = request.session.get(INVITATION_SESSION_KEY)
    if not token:
        return redirect("home")
    return redirect(reverse("invitation_accept", kwargs={"token": token}))
