"""Provider staff pages under /staff/: the approvals inbox (account managers), the second-
approval queue (capacity planners), and a request's detail with its decisions."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import ListView, TemplateView

from accounts.models import StaffRole
from accounts.views_base import StaffViewMixin
from portal.errors import DomainError
from quotas import services
from quotas.forms import CommentForm, CounterOfferForm, Form, ReasonForm
from quotas.models import CapacityPool
from quotas.selectors import pages
from quotas.services._base import candidate_pools
from quotas.workflow import REQUEST_AWAITING_DECISION, RequestState
from usage.costing import LIST_CURRENCY

from .base import form_add_domain_error

DECIDERS = frozenset({StaffRole.ACCOUNT_MANAGER, StaffRole.CAPACITY_PLANNER})


HOME_ORGANIZATIONS = 5  # the landing page previews; /staff/organizations/ lists them all


class StaffHomeView(StaffViewMixin, TemplateView):
    template_name = "quotas/staff_home.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["organizations"] = pages.staff_organization_overview(user=self.request.user)[
            :HOME_ORGANIZATIONS
        ]
        context["counts"] = pages.staff_inbox_counts(user=self.request.user)
        return context


class StaffOrganizationListView(StaffViewMixin, ListView):
    """The organizations a staff member looks after (an account manager their own, planners
    all), a page at a time, with this month's usage cost and the consumed spend of the active
    contract, for the page's organizations only."""

    template_name = "quotas/staff_organizations.html"
    context_object_name = "organizations"
    paginate_by = 25

    def get_queryset(self):
        params = self.request.GET
        return pages.staff_organization_list(
            user=self.request.user,
            search=params.get("q", "")[:200],
            status=params.get("status", ""),
            awaiting_only=params.get("awaiting") == "1",
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        month = timezone.now().astimezone(UTC).date().replace(day=1)
        next_month = (month + timedelta(days=32)).replace(day=1)
        organizations = context["organizations"]
        cost = pages.staff_organization_usage_cost(
            organization_ids=[org.pk for org in organizations], start=month, end=next_month
        )
        consumed = pages.staff_contract_consumed(
            contract_ids=[org.contract_id for org in organizations if org.contract_id]
        )
        for org in organizations:
            org.contract_consumed = consumed.get(org.contract_id)
            org.contract_consumed_percent = (
                (org.contract_consumed * 100 / org.contract_committed).quantize(Decimal("0.1"))
                if org.contract_consumed is not None and org.contract_committed
                else None
            )
            per_currency = cost.get(org.pk, {})
            currency = org.contract_currency or LIST_CURRENCY
            org.month_cost = per_currency.get(currency, Decimal("0.00"))
            org.month_currency = currency
            org.month_other = sorted(
                (c, amount) for c, amount in per_currency.items() if c != currency
            )
        params = self.request.GET.copy()
        params.pop("page", None)
        context.update(
            month=month,
            q=self.request.GET.get("q", ""),
            status=self.request.GET.get("status", ""),
            awaiting=self.request.GET.get("awaiting") == "1",
            query_string=params.urlencode(),
        )
        return context


_ROW_LINKS = ("staff_request_detail", "staff_approve", "staff_counter_offer", "staff_reject")
_PK_SLOT = 987654321987  # stands for the row's id in the reversed URLs


class _QueueView(StaffViewMixin, ListView):
    template_name = "quotas/staff_queue.html"
    context_object_name = "requests"
    paginate_by = 25
    title = ""
    empty_text = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        # Each row links four actions: reverse each URL once per page, not four times a row.
        links = {name: reverse(name, kwargs={"pk": _PK_SLOT}) for name in _ROW_LINKS}
        context["rows"] = [
            (
                r,
                pages.latest_checks(r),
                pages.sla_status(r.decision_due_at),
                pages.request_glance(r),
                {name: url.replace(str(_PK_SLOT), str(r.pk)) for name, url in links.items()},
            )
            for r in context["requests"]
        ]
        context["title"] = self.title
        context["queue"] = self.queue
        context["empty_text"] = self.empty_text
        context["now"] = timezone.now()
        return context


class ApprovalInboxView(_QueueView):
    """Account managers: their organizations' requests awaiting a decision, soonest due first."""

    staff_roles = DECIDERS
    title = "Approvals inbox"
    queue = "first"
    empty_text = (
        "Nothing waits on you. New requests of your organizations appear here once their "
        "automatic checks have run."
    )

    def get_queryset(self):
        return pages.staff_approval_inbox(user=self.request.user)


class SecondApprovalQueueView(_QueueView):
    staff_roles = frozenset({StaffRole.CAPACITY_PLANNER})
    title = "Second approvals"
    queue = "second"
    empty_text = (
        "No request waits for a second approval. Requests above the threshold in GPUs or value "
        "come here after their account manager approves them."
    )

    def get_queryset(self):
        return pages.staff_second_approval_queue(user=self.request.user)


class ApproveForm(Form):
    pool = forms.ModelChoiceField(
        label="Grant in", queryset=CapacityPool.objects.none(), required=False, empty_label=None
    )
    reason = forms.CharField(label="Note (optional)", required=False, max_length=2000)

    def __init__(self, *args, pools=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pool"].queryset = CapacityPool.objects.filter(pk__in=[p.pk for p in pools])
        self.fields["pool"].choices = [(p.pk, str(p)) for p in pools]


class _StaffRequestMixin(StaffViewMixin):
    staff_roles = DECIDERS

    def load(self):
        self.capacity_request = pages.staff_request_get(
            user=self.request.user, pk=self.kwargs["pk"]
        )
        self.organization = self.capacity_request.organization
        return self.capacity_request

    def detail_url(self) -> str:
        return reverse("staff_request_detail", kwargs={"pk": self.kwargs["pk"]})

    def render_in_org_time(self, template: str, context: dict, status: int = 200) -> HttpResponse:
        with timezone.override(self.organization.tzinfo):
            context = {"time_zone_name": self.organization.time_zone, **context}
            return render(self.request, template, context, status=status)


class StaffRequestDetailView(_StaffRequestMixin, View):
    template_name = "quotas/staff_request_detail.html"

    def get(self, request, *args, **kwargs) -> HttpResponse:
        return self.render_detail()

    def render_detail(self, *, approve_form=None, status: int = 200) -> HttpResponse:
        detail = pages.staff_request_detail_get(user=self.request.user, pk=self.kwargs["pk"])
        capacity_request = detail["capacity_request"]
        self.organization = capacity_request.organization
        awaiting = capacity_request.state in REQUEST_AWAITING_DECISION
        pools = candidate_pools(capacity_request) if capacity_request.is_reservation else []
        context = {
            **detail,
            "live": pages.staff_live_figures(capacity_request=capacity_request, pools=pools)
            if awaiting
            else None,
            "staff_view": True,
            "can_decide": awaiting,
            "can_counter_offer": awaiting and capacity_request.is_reservation,
            "approve_form": approve_form or ApproveForm(pools=pools),
            "is_second": capacity_request.state == RequestState.PENDING_SECOND_APPROVAL,
            "comment_form": CommentForm(),
            "comment_url": reverse("staff_request_comment", kwargs={"pk": capacity_request.pk}),
        }
        return self.render_in_org_time(self.template_name, context, status=status)


class StaffApproveView(_StaffRequestMixin, View):
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs) -> HttpResponse:
        capacity_request = self.load()
        pools = candidate_pools(capacity_request) if capacity_request.is_reservation else []
        form = ApproveForm(request.POST, pools=pools)
        if not form.is_valid():
            messages.error(request, "Choose where to grant the capacity.")
            return redirect(self.detail_url())
        try:
            capacity_request = services.capacity_request_approve(
                capacity_request=capacity_request,
                actor=request.user,
                pool=form.cleaned_data.get("pool"),
                reason=form.cleaned_data.get("reason", ""),
            )
        except DomainError as exc:
            messages.error(request, f"{capacity_request.reference} was not approved: {exc.message}")
            return redirect(self.after_url())
        if capacity_request.state == RequestState.PENDING_SECOND_APPROVAL:
            messages.success(
                request, f"{capacity_request.reference} approved; it now needs a second approval."
            )
        else:
            messages.success(request, f"{capacity_request.reference} approved.")
        return redirect(self.after_url())

    def after_url(self) -> str:
        if self.request.POST.get("next_page") == "inbox":
            return reverse("staff_approvals")
        return self.detail_url()


class StaffRejectView(_StaffRequestMixin, View):
    template_name = "quotas/action_confirm.html"

    def get(self, request, *args, **kwargs) -> HttpResponse:
        return self.render_confirm(ReasonForm())

    def post(self, request, *args, **kwargs) -> HttpResponse:
        self.load()
        form = ReasonForm(request.POST)
        if form.is_valid():
            try:
                services.capacity_request_reject(
                    capacity_request=self.capacity_request,
                    actor=request.user,
                    reason=form.cleaned_data["reason"],
                )
            except DomainError as exc:
                if exc.field == "reason":
                    form_add_domain_error(form, exc)
                else:
                    messages.error(request, exc.message)
                    return redirect(self.detail_url())
            else:
                messages.success(request, f"{self.capacity_request.reference} rejected.")
                return redirect(self.detail_url())
        return self.render_confirm(form, status=400)

    def render_confirm(self, form, status=200) -> HttpResponse:
        capacity_request = self.load()
        action = {
            "label": "Reject",
            "destructive": True,
            "question": f"Reject {capacity_request.reference} of {self.organization.name}? "
            "The requester reads your reason.",
        }
        return self.render_in_org_time(
            self.template_name,
            {
                "action": action,
                "object": capacity_request,
                "form": form,
                "cancel_url": self.detail_url(),
            },
            status=status,
        )


class StaffCounterOfferView(_StaffRequestMixin, View):
    template_name = "quotas/staff_counter_offer.html"

    def get(self, request, *args, **kwargs) -> HttpResponse:
        capacity_request = self.load()
        with timezone.override(self.organization.tzinfo):
            form = CounterOfferForm(
                initial={
                    "region": capacity_request.region_id,
                    "sku": capacity_request.sku_id,
                    "gpu_count": capacity_request.gpu_count,
                    "starts_at": capacity_request.starts_at,
                    "ends_at": capacity_request.ends_at,
                }
            )
            return self.render_form(form)

    def post(self, request, *args, **kwargs) -> HttpResponse:
        capacity_request = self.load()
        with timezone.override(self.organization.tzinfo):
            form = CounterOfferForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    services.capacity_request_counter_offer(
                        capacity_request=capacity_request,
                        actor=request.user,
                        gpu_count=data["gpu_count"],
                        starts_at=data["starts_at"],
                        ends_at=data["ends_at"],
                        region=data["region"],
                        sku=data["sku"],
                        note=data["note"],
                    )
                except DomainError as exc:
                    form_add_domain_error(form, exc)
                else:
                    messages.success(
                        request, f"Counter-offer sent for {capacity_request.reference}."
                    )
                    return redirect(self.detail_url())
            return self.render_form(form, status=400)

    def render_form(self, form, status=200) -> HttpResponse:
        return self.render_in_org_time(
            self.template_name,
            {
                "capacity_request": self.capacity_request,
                "form": form,
                "cancel_url": self.detail_url(),
            },
            status=status,
        )


class StaffCommentView(_StaffRequestMixin, View):
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs) -> HttpResponse:
        capacity_request = self.load()
        form = CommentForm(request.POST)
        if form.is_valid():
            try:
                services.request_comment_add(
                    capacity_request=capacity_request,
                    author=request.user,
                    body=form.cleaned_data["body"],
                )
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, "Comment added; the customer is told.")
        else:
            messages.error(request, "Write a comment first.")
        return redirect(self.detail_url() + "#comments")


class StaffBulkApproveView(StaffViewMixin, View):
    """Approve several requests from a queue at once; each is its own transaction, so one that
    no longer fits is reported and the others still go through."""

    staff_roles = DECIDERS
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs) -> HttpResponse:
        # isdecimal, not isdigit: "²" is a digit to Python but not a number int() reads.
        ids = [int(pk) for pk in request.POST.getlist("ids") if pk.isascii() and pk.isdecimal()]
        back = (
            "staff_second_approvals" if request.POST.get("queue") == "second" else "staff_approvals"
        )
        if not ids:
            messages.error(request, "Tick the requests to approve first.")
            return redirect(back)
        approved, refused = [], []
        for pk in ids:
            try:
                # One id this user may not see must not stop the others (already approved).
                capacity_request = pages.staff_request_get(user=request.user, pk=pk)
            except Http404:
                refused.append(f"REQ-{pk}: no such request in your organizations.")
                continue
            try:
                services.capacity_request_approve(
                    capacity_request=capacity_request, actor=request.user
                )
            except DomainError as exc:
                refused.append(f"{capacity_request.reference}: {exc.message}")
            else:
                approved.append(capacity_request.reference)
        if approved:
            messages.success(request, f"Approved {', '.join(approved)}.")
        for line in refused:
            messages.error(request, f"Not approved: {line}")
        return redirect(back)


PLANNERS = frozenset({StaffRole.CAPACITY_PLANNER})


class CapacityOverviewView(StaffViewMixin, TemplateView):
    """Capacity planners: a regions x GPU types map of how committed each pool is, and the
    waitlist."""

    staff_roles = PLANNERS
    template_name = "quotas/staff_capacity.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(pages.capacity_heatmap(days=30))
        context["waitlist"] = pages.waitlist_list()[:50]
        return context


class PoolOverviewView(StaffViewMixin, TemplateView):
    """One pool over the coming months: capacity against held and requested GPUs."""

    staff_roles = PLANNERS
    template_name = "quotas/staff_pool.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        overview = pages.pool_overview_get(pool_id=self.kwargs["pk"], days=90)
        context.update(overview)
        context["chart"] = {
            "labels": [d.day.isoformat() for d in overview["days"]],
            "capacity": [d.capacity for d in overview["days"]],
            "held": [d.held for d in overview["days"]],
            "requested": [d.held + d.requested for d in overview["days"]],
        }
        return context
