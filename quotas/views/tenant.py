"""Tenant pages under /o/<slug>/: dashboard, requests (list, new, detail, actions) and
reservations (list, detail, cancel, release early, extend)."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import ListView, TemplateView

from accounts.views_base import OrganizationViewMixin
from portal.errors import DomainError
from quotas import services
from quotas.forms import (
    ApprovalPolicyForm,
    CapacityRequestForm,
    CommentForm,
    ExtendForm,
    OptionalReasonForm,
    ReasonForm,
    RequestFilterForm,
)
from quotas.models import CapacityRequest
from quotas.selectors import pages
from quotas.selectors.dashboard import dashboard_figures_get, dashboard_lists_get
from quotas.selectors.preview import request_preview
from quotas.services.requests import DRAFT_FIELDS, POLICY_FIELDS
from quotas.workflow import REQUEST_ACTIONS as ACTION_STATES
from quotas.workflow import RESERVATION_ACTIONS as RESERVATION_ACTION_STATES
from quotas.workflow import RequestState, ReservationState

from .base import OrganizationTimeZoneMixin, form_add_domain_error

PAGE_CAPABILITIES = (
    "requests.view",
    "requests.policy",
    "requests.create",
    "requests.sign_off",
    "reservations.manage",
    "requests.decide",
)


class OrgPage(OrganizationViewMixin, OrganizationTimeZoneMixin):
    def base_context(self, **extra) -> dict:
        return {
            "organization": self.organization,
            "access": self.access,
            "can": {cap.replace(".", "_"): self.access.can(cap) for cap in PAGE_CAPABILITIES},
            "time_zone_name": str(self.time_zone()),
            **extra,
        }

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        return {**self.base_context(), **context}


# --- Dashboard ---------------------------------------------------------------------------------
_PK_SLOT = 987654321987  # stands for a row's id in a URL reversed once per page


class DashboardView(OrgPage, TemplateView):
    template_name = "quotas/dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        lists = dashboard_lists_get(organization=self.organization)
        context.update(lists)
        context["figures"] = dashboard_figures_get(
            organization=self.organization, include_billing=self.access.can("billing.view")
        )
        # Up to forty rows link a reservation or a request: reverse each URL once per page.
        slot = str(_PK_SLOT)
        links = {
            name: reverse(name, kwargs={"org_slug": self.organization.slug, "pk": _PK_SLOT})
            for name in ("reservation_detail", "request_detail")
        }
        for r in lists["active_reservations"] + lists["upcoming_reservations"]:
            r.detail_url = links["reservation_detail"].replace(slot, str(r.pk))
        for r, _ in lists["waiting_requests"]:
            r.detail_url = links["request_detail"].replace(slot, str(r.pk))
        for e in lists["recent_events"]:
            e.subject_url = (
                links["reservation_detail"].replace(slot, str(e.reservation_id))
                if e.reservation_id
                else links["request_detail"].replace(slot, str(e.request_id))
            )
        return context


# --- Requests ----------------------------------------------------------------------------------
class RequestListView(OrgPage, ListView):
    template_name = "quotas/request_list.html"
    context_object_name = "requests"
    paginate_by = 25
    permission_map = {"GET": "requests.view", "HEAD": "requests.view"}

    def get_queryset(self):
        self.filter_form = RequestFilterForm(self.request.GET or None)
        filters = self.filter_form.cleaned_data if self.filter_form.is_valid() else {}
        return pages.request_list(
            organization=self.organization,
            state=filters.get("state") or None,
            sku=filters.get("sku"),
            region=filters.get("region"),
            search=filters.get("q") or None,
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["filter_form"] = self.filter_form
        context["filtered"] = any(self.request.GET.get(k) for k in ("state", "sku", "region", "q"))
        return context


def _preview_for(form: CapacityRequestForm, organization):
    """The availability and quote for a valid reservation form, or None."""
    data = form.cleaned_data
    if data.get("kind") != CapacityRequest.Kind.RESERVATION:
        return None
    return request_preview(
        organization=organization,
        sku=data["sku"],
        region=data["region"],
        gpu_count=data["gpu_count"],
        starts_at=data["starts_at"],
        ends_at=data["ends_at"],
        alternative_skus=list(data.get("alternative_skus") or []),
        alternative_regions=list(data.get("alternative_regions") or []),
    )


class RequestCreateView(OrgPage, View):
    """New request: the form (with live availability), then a summary to confirm."""

    permission_map = {
        "GET": "requests.create",
        "HEAD": "requests.create",
        "POST": "requests.create",
    }
    form_template = "quotas/request_form.html"
    confirm_template = "quotas/request_confirm.html"

    def get(self, request, *args, **kwargs) -> HttpResponse:
        return self.render_form(CapacityRequestForm())

    def post(self, request, *args, **kwargs) -> HttpResponse:
        form = CapacityRequestForm(request.POST)
        step = request.POST.get("step", "review")
        if step == "edit" or not form.is_valid():
            return self.render_form(form)
        if step == "review":
            return render(
                request,
                self.confirm_template,
                self.context(form=form, preview=_preview_for(form, self.organization)),
            )
        try:
            capacity_request = services.capacity_request_create(
                organization=self.organization,
                actor=request.user,
                submit=step == "submit",
                **form.cleaned_data,
            )
        except DomainError as exc:
            form_add_domain_error(form, exc)
            return self.render_form(form)
        if step == "submit":
            messages.success(request, f"{capacity_request.reference} is submitted.")
        else:
            messages.success(request, f"{capacity_request.reference} is saved as a draft.")
        return redirect("request_detail", org_slug=self.organization.slug, pk=capacity_request.pk)

    def render_form(self, form: CapacityRequestForm) -> HttpResponse:
        return render(self.request, self.form_template, self.context(form=form))

    def context(self, **extra) -> dict:
        return self.base_context(**extra)


class RequestEditView(OrgPage, View):
    """Change a draft, then keep it or submit it. The kind of a request does not change."""

    permission_map = {
        "GET": "requests.create",
        "HEAD": "requests.create",
        "POST": "requests.create",
    }
    template_name = "quotas/request_form.html"

    def get(self, request, *args, **kwargs) -> HttpResponse:
        draft = self.get_draft()
        initial = {name: getattr(draft, name) for name in DRAFT_FIELDS}
        initial["kind"] = draft.kind
        initial["alternative_skus"] = list(draft.alternative_skus.all())
        initial["alternative_regions"] = list(draft.alternative_regions.all())
        return self.render_form(draft, CapacityRequestForm(initial=initial))

    def post(self, request, *args, **kwargs) -> HttpResponse:
        draft = self.get_draft()
        data = request.POST.copy()
        data["kind"] = draft.kind
        form = CapacityRequestForm(data)
        if not form.is_valid():
            return self.render_form(draft, form, status=400)
        fields = {k: v for k, v in form.cleaned_data.items() if k != "kind"}
        if draft.kind == CapacityRequest.Kind.QUOTA_INCREASE:
            for name in (
                "gpu_count",
                "starts_at",
                "ends_at",
                "alternative_skus",
                "alternative_regions",
                "waitlist_if_unavailable",
            ):
                fields.pop(name, None)
        else:
            fields.pop("on_demand_limit", None)
        try:
            draft = services.capacity_request_update(
                capacity_request=draft, actor=request.user, **fields
            )
            if request.POST.get("step") == "submit":
                draft = services.capacity_request_submit(capacity_request=draft, actor=request.user)
        except DomainError as exc:
            form_add_domain_error(form, exc)
            return self.render_form(draft, form, status=400)
        messages.success(
            request,
            f"{draft.reference} is submitted."
            if request.POST.get("step") == "submit"
            else f"{draft.reference} is saved.",
        )
        return redirect("request_detail", org_slug=self.organization.slug, pk=draft.pk)

    def get_draft(self) -> CapacityRequest:
        capacity_request = pages.request_get(organization=self.organization, pk=self.kwargs["pk"])
        if capacity_request.state != RequestState.DRAFT:
            raise Http404("Only drafts can be edited.")
        return capacity_request

    def render_form(self, draft, form, status=200) -> HttpResponse:
        return render(
            self.request,
            self.template_name,
            self.base_context(form=form, editing=draft),
            status=status,
        )


class RequestAvailabilityView(OrgPage, View):
    """htmx fragment: availability and price for what the form holds so far."""

    permission_map = {"GET": "requests.create", "HEAD": "requests.create"}

    def get(self, request, *args, **kwargs) -> HttpResponse:
        form = CapacityRequestForm(request.GET)
        preview = None
        missing = True
        quota = request.GET.get("kind") == CapacityRequest.Kind.QUOTA_INCREASE
        if form.is_valid() and form.cleaned_data["kind"] == CapacityRequest.Kind.RESERVATION:
            missing = False
            try:
                preview = _preview_for(form, self.organization)
            except DomainError as exc:
                form_add_domain_error(form, exc)
        return render(
            request,
            "quotas/_availability.html",
            self.base_context(form=form, preview=preview, missing=missing, quota=quota),
        )


@dataclass(frozen=True)
class Action:
    """A button on a request or reservation page: who may press it, in which states."""

    name: str
    label: str
    capability: str
    states: frozenset[str]
    destructive: bool = False
    reason: str = ""  # "" none, "optional", "required"
    question: str = ""


REQUEST_ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action(
            "submit",
            "Submit",
            "requests.create",
            ACTION_STATES["submit"],
            question="Submit this request to the provider (or for sign-off)?",
        ),
        Action(
            "sign_off",
            "Sign off",
            "requests.sign_off",
            ACTION_STATES["sign_off"],
            question="Sign off this request so it goes to the provider?",
        ),
        Action(
            "sign_off_reject",
            "Refuse sign-off",
            "requests.sign_off",
            ACTION_STATES["sign_off"],
            destructive=True,
            reason="required",
            question="Refuse this request? It will not reach the provider.",
        ),
        Action(
            "accept_offer",
            "Accept offer",
            "requests.create",
            ACTION_STATES["accept_offer"],
            question="Accept the offer? The reservation is booked at once.",
        ),
        Action(
            "decline_offer",
            "Decline offer",
            "requests.create",
            ACTION_STATES["decline_offer"],
            destructive=True,
            reason="optional",
            question="Decline the offer? The request is withdrawn and the capacity released.",
        ),
        Action(
            "waitlist",
            "Join the waitlist",
            "requests.create",
            ACTION_STATES["waitlist"],
            question="Wait for capacity? You are offered it as soon as it frees up.",
        ),
        Action(
            "withdraw",
            "Withdraw",
            "requests.create",
            ACTION_STATES["withdraw"],
            destructive=True,
            reason="optional",
            question="Withdraw this request? This cannot be undone.",
        ),
    )
}

RESERVATION_ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action(
            "cancel",
            "Cancel reservation",
            "reservations.manage",
            RESERVATION_ACTION_STATES["cancel"],
            destructive=True,
            reason="optional",
            question="Cancel this reservation before it starts? Its capacity is released.",
        ),
        Action(
            "release",
            "Release early",
            "reservations.manage",
            RESERVATION_ACTION_STATES["release_early"],
            destructive=True,
            reason="optional",
            question="Release this reservation now? Its GPUs stop being yours at once.",
        ),
    )
}


def _run_request_action(name: str, *, capacity_request, user, reason: str):
    if name == "submit":
        return services.capacity_request_submit(capacity_request=capacity_request, actor=user)
    if name == "sign_off":
        return services.capacity_request_sign_off(
            capacity_request=capacity_request, actor=user, approve=True
        )
    if name == "sign_off_reject":
        return services.capacity_request_sign_off(
            capacity_request=capacity_request, actor=user, approve=False, reason=reason
        )
    if name == "accept_offer":
        return services.capacity_request_accept_offer(capacity_request=capacity_request, actor=user)
    if name == "decline_offer":
        return services.capacity_request_decline_offer(
            capacity_request=capacity_request, actor=user, reason=reason
        )
    if name == "waitlist":
        return services.capacity_request_waitlist(capacity_request=capacity_request, actor=user)
    if name == "withdraw":
        return services.capacity_request_withdraw(
            capacity_request=capacity_request, actor=user, reason=reason
        )
    raise Http404("No such action.")


def _run_reservation_action(name: str, *, reservation, user, reason: str):
    if name == "cancel":
        return services.reservation_cancel(reservation=reservation, actor=user, reason=reason)
    if name == "release":
        return services.reservation_release_early(
            reservation=reservation, actor=user, reason=reason
        )
    raise Http404("No such action.")


def allowed_actions(actions: dict[str, Action], *, state: str, access) -> list[Action]:
    return [a for a in actions.values() if state in a.states and access.can(a.capability)]


class RequestDetailView(OrgPage, TemplateView):
    template_name = "quotas/request_detail.html"
    permission_map = {"GET": "requests.view", "HEAD": "requests.view"}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        detail = pages.request_detail_get(organization=self.organization, pk=self.kwargs["pk"])
        context.update(detail)
        actions = allowed_actions(
            REQUEST_ACTIONS, state=detail["capacity_request"].state, access=self.access
        )
        if any(a.name == "decline_offer" for a in actions):
            # Declining an offer withdraws the request: one button says it better than two.
            actions = [a for a in actions if a.name != "withdraw"]
        context["actions"] = actions
        context["can_edit"] = detail[
            "capacity_request"
        ].state == RequestState.DRAFT and self.access.can("requests.create")
        context["comment_form"] = kwargs.get("comment_form") or CommentForm()
        context["can_comment"] = self.access.can("requests.view") and (
            self.access.is_member or self.access.can("requests.decide")
        )
        return context


class RequestCommentView(OrgPage, View):
    permission_map = {"POST": "requests.view"}

    def post(self, request, *args, **kwargs) -> HttpResponse:
        capacity_request = pages.request_get(organization=self.organization, pk=kwargs["pk"])
        form = CommentForm(request.POST)
        if form.is_valid():
            try:
                services.request_comment_add(
                    capacity_request=capacity_request,
                    author=request.user,
                    body=form.cleaned_data["body"],
                )
            except DomainError as exc:
                form_add_domain_error(form, exc)
        if form.errors:
            view = RequestDetailView()
            view.setup(request, *args, **kwargs)
            view.organization, view.access = self.organization, self.access
            return render(
                request,
                RequestDetailView.template_name,
                view.get_context_data(comment_form=form),
                status=400,
            )
        messages.success(request, "Comment added.")
        return redirect(
            reverse(
                "request_detail", kwargs={"org_slug": self.organization.slug, "pk": kwargs["pk"]}
            )
            + "#comments"
        )


class _ActionView(OrgPage, View, abc.ABC):
    """GET asks for confirmation (and a reason where one is wanted), POST does it. Subclasses
    name the object (``get_object``), the service call (``run``) and where to go back."""

    permission_map = {"GET": "requests.view", "HEAD": "requests.view", "POST": "requests.view"}
    actions: dict[str, Action]
    template_name = "quotas/action_confirm.html"

    @abc.abstractmethod
    def get_object(self): ...

    @abc.abstractmethod
    def run(self, action: Action, obj, reason: str): ...

    @abc.abstractmethod
    def detail_url(self, obj) -> str: ...

    def resolve(self, kwargs) -> tuple[Action, object]:
        action = self.actions.get(kwargs["action"])
        if action is None:
            raise Http404("No such action.")
        obj = self.get_object()
        if not self.access.can(action.capability):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied("Your role in this organization does not allow this.")
        return action, obj

    def form_for(self, action: Action, data=None):
        if action.reason == "required":
            return ReasonForm(data)
        if action.reason == "optional":
            return OptionalReasonForm(data)
        return None

    def get(self, request, *args, **kwargs) -> HttpResponse:
        action, obj = self.resolve(kwargs)
        return self.render_confirm(action, obj, self.form_for(action))

    def post(self, request, *args, **kwargs) -> HttpResponse:
        action, obj = self.resolve(kwargs)
        form = self.form_for(action, request.POST)
        if form is not None and not form.is_valid():
            return self.render_confirm(action, obj, form, status=400)
        reason = form.cleaned_data.get("reason", "") if form is not None else ""
        try:
            self.run(action, obj, reason)
        except DomainError as exc:
            if form is not None and exc.field == "reason":
                form_add_domain_error(form, exc)
                return self.render_confirm(action, obj, form, status=400)
            messages.error(request, exc.message)
            return redirect(self.detail_url(obj))
        messages.success(request, f"{action.label}: done.")
        return redirect(self.detail_url(obj))

    def render_confirm(self, action, obj, form, status=200) -> HttpResponse:
        return render(
            self.request,
            self.template_name,
            self.base_context(
                action=action, object=obj, form=form, cancel_url=self.detail_url(obj)
            ),
            status=status,
        )


class RequestActionView(_ActionView):
    actions = REQUEST_ACTIONS

    def get_object(self):
        return pages.request_get(organization=self.organization, pk=self.kwargs["pk"])

    def run(self, action, obj, reason):
        return _run_request_action(
            action.name, capacity_request=obj, user=self.request.user, reason=reason
        )

    def detail_url(self, obj) -> str:
        return reverse("request_detail", kwargs={"org_slug": self.organization.slug, "pk": obj.pk})


# --- Reservations ------------------------------------------------------------------------------
class ReservationListView(OrgPage, ListView):
    template_name = "quotas/reservation_list.html"
    context_object_name = "reservations"
    paginate_by = 25
    permission_map = {"GET": "requests.view", "HEAD": "requests.view"}

    def get_queryset(self):
        state = self.request.GET.get("state") or None
        if state not in ReservationState.values:
            state = None
        self.state = state
        return pages.reservation_list(organization=self.organization, state=state)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["states"] = ReservationState.choices
        context["state"] = self.state
        return context


class ReservationDetailView(OrgPage, TemplateView):
    template_name = "quotas/reservation_detail.html"
    permission_map = {"GET": "requests.view", "HEAD": "requests.view"}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        detail = pages.reservation_detail_get(organization=self.organization, pk=self.kwargs["pk"])
        context.update(detail)
        reservation = detail["reservation"]
        context["actions"] = allowed_actions(
            RESERVATION_ACTIONS, state=reservation.state, access=self.access
        )
        context["can_extend"] = reservation.state in RESERVATION_ACTION_STATES[
            "extend"
        ] and self.access.can("reservations.manage")
        return context


class ReservationActionView(_ActionView):
    actions = RESERVATION_ACTIONS

    def get_object(self):
        return pages.reservation_get(organization=self.organization, pk=self.kwargs["pk"])

    def run(self, action, obj, reason):
        return _run_reservation_action(
            action.name, reservation=obj, user=self.request.user, reason=reason
        )

    def detail_url(self, obj) -> str:
        return reverse(
            "reservation_detail", kwargs={"org_slug": self.organization.slug, "pk": obj.pk}
        )


class ReservationExtendView(OrgPage, View):
    permission_map = {
        "GET": "reservations.manage",
        "HEAD": "reservations.manage",
        "POST": "reservations.manage",
    }
    template_name = "quotas/reservation_extend.html"

    def get(self, request, *args, **kwargs) -> HttpResponse:
        reservation = pages.reservation_get(organization=self.organization, pk=kwargs["pk"])
        return self.render_form(reservation, ExtendForm(initial={"ends_at": reservation.ends_at}))

    def post(self, request, *args, **kwargs) -> HttpResponse:
        reservation = pages.reservation_get(organization=self.organization, pk=kwargs["pk"])
        form = ExtendForm(request.POST)
        if form.is_valid():
            try:
                extension = services.reservation_extend(
                    reservation=reservation,
                    actor=request.user,
                    ends_at=form.cleaned_data["ends_at"],
                    justification=form.cleaned_data["justification"],
                )
            except DomainError as exc:
                form_add_domain_error(form, exc)
            else:
                messages.success(request, f"Extension {extension.reference} is submitted.")
                return redirect("request_detail", org_slug=self.organization.slug, pk=extension.pk)
        return self.render_form(reservation, form, status=400)

    def render_form(self, reservation, form, status=200) -> HttpResponse:
        return render(
            self.request,
            self.template_name,
            self.base_context(reservation=reservation, form=form),
            status=status,
        )


class ApprovalPolicyView(OrgPage, View):
    """Everyone in the organization may read its approval rules; owners and admins change
    their sign-off and auto-accept choices, the account manager auto-approval too."""

    permission_map = {"GET": "requests.view", "HEAD": "requests.view", "POST": "requests.policy"}
    template_name = "quotas/approval_policy.html"

    def provider(self) -> bool:
        return not self.access.is_member

    def get(self, request, *args, **kwargs) -> HttpResponse:
        policy = services.approval_policy_for(self.organization)
        form = None
        if self.access.can("requests.policy"):
            form = ApprovalPolicyForm(
                provider=self.provider(),
                initial={name: getattr(policy, name) for name in POLICY_FIELDS},
            )
        return self.render_page(policy, form)

    def post(self, request, *args, **kwargs) -> HttpResponse:
        form = ApprovalPolicyForm(request.POST, provider=self.provider())
        if form.is_valid():
            try:
                services.approval_policy_set(
                    organization=self.organization, actor=request.user, **form.cleaned_data
                )
            except DomainError as exc:
                form_add_domain_error(form, exc)
            else:
                messages.success(request, "The approval policy is saved.")
                return redirect("approval_policy", org_slug=self.organization.slug)
        return self.render_page(services.approval_policy_for(self.organization), form, 400)

    def render_page(self, policy, form, status=200) -> HttpResponse:
        return render(
            self.request,
            self.template_name,
            self.base_context(policy=policy, form=form),
            status=status,
        )
