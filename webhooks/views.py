"""Pages of an organization's webhooks: endpoints, their delivery log, redelivery.

Owners and admins only (``webhooks.manage``). Creating or rotating redirects to the endpoint's
page, whose next GET (only that one) shows the secret; a refresh repeats that GET, not the
POST.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.generic import TemplateView

from accounts.views import no_store, one_time_secret_pop, one_time_secret_stash
from accounts.views_base import OrganizationViewMixin
from portal.errors import DomainError

from . import selectors, services
from .forms import DeliveryFilterForm, WebhookEndpointForm
from .models import WebhookEndpoint

DELIVERY_PAGE_SIZE = 50
MANAGE = {"GET": "webhooks.manage", "HEAD": "webhooks.manage", "POST": "webhooks.manage"}


class WebhookListView(OrganizationViewMixin, TemplateView):
    """The endpoints; POST registers one and redirects to its page, which shows its secret
    once."""

    template_name = "webhooks/endpoint_list.html"
    permission_map = MANAGE

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["endpoints"] = selectors.webhook_endpoint_list(organization=self.organization)
        context.setdefault("form", WebhookEndpointForm())
        return context

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        form = WebhookEndpointForm(request.POST)
        if form.is_valid():
            try:
                endpoint = services.webhook_endpoint_create(
                    organization=self.organization,
                    actor=request.user,
                    request=request,
                    **form.cleaned_data,
                )
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                one_time_secret_stash(
                    request,
                    kind="webhook_created",
                    organization=self.organization,
                    object_id=endpoint.pk,
                )
                return redirect(
                    "webhook_detail", org_slug=self.organization.slug, endpoint_id=endpoint.pk
                )
        return self.render_to_response(self.get_context_data(form=form), status=400)


class _EndpointMixin(OrganizationViewMixin):
    permission_map = MANAGE

    def get_endpoint(self) -> WebhookEndpoint:
        endpoint = selectors.webhook_endpoint_get(
            organization=self.organization, pk=self.kwargs["endpoint_id"]
        )
        if endpoint is None:
            raise Http404("No such webhook.")
        return endpoint

    def back(self, endpoint: WebhookEndpoint) -> HttpResponse:
        return redirect("webhook_detail", org_slug=self.organization.slug, endpoint_id=endpoint.pk)


class WebhookDetailView(_EndpointMixin, TemplateView):
    """One endpoint and its delivery log (newest first, filtered by status)."""

    template_name = "webhooks/endpoint_detail.html"
    permission_map = {"GET": "webhooks.manage", "HEAD": "webhooks.manage"}

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        endpoint_id = self.kwargs["endpoint_id"]
        for kind in ("webhook_created", "webhook_rotated"):
            stashed = one_time_secret_pop(
                request, kind=kind, organization=self.organization, object_id=endpoint_id
            )
            if stashed:
                context = {
                    **super().get_context_data(**kwargs),
                    "endpoint": self.get_endpoint(),
                    "created": kind == "webhook_created",
                }
                return no_store(
                    self.response_class(
                        request=request, template="webhooks/endpoint_secret.html", context=context
                    )
                )
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        endpoint = self.get_endpoint()
        deliveries = selectors.webhook_delivery_list(
            organization=self.organization, endpoint=endpoint
        )
        form = DeliveryFilterForm(self.request.GET or None)
        status = form.cleaned_data["status"] if form.is_bound and form.is_valid() else ""
        if status:
            deliveries = deliveries.filter(status=status)
        context["endpoint"] = endpoint
        context["filter_form"] = form if form.is_bound else DeliveryFilterForm()
        context["status"] = status
        context["page"] = Paginator(deliveries, DELIVERY_PAGE_SIZE).get_page(
            self.request.GET.get("page")
        )
        return context


class WebhookEnableView(_EndpointMixin, TemplateView):
    """POST enabled=true|false."""

    permission_map = {"POST": "webhooks.manage"}

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        endpoint = self.get_endpoint()
        enabled = request.POST.get("enabled") == "true"
        services.webhook_endpoint_update(
            endpoint=endpoint, actor=request.user, enabled=enabled, request=request
        )
        messages.success(request, "Webhook enabled." if enabled else "Webhook disabled.")
        return self.back(endpoint)


class WebhookRotateSecretView(_EndpointMixin, TemplateView):
    """GET asks for confirmation; POST replaces the secret and redirects to the endpoint's
    page, which shows the new one once."""

    template_name = "webhooks/endpoint_confirm_rotate.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["endpoint"] = self.get_endpoint()
        return context

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        endpoint = services.webhook_endpoint_rotate_secret(
            endpoint=self.get_endpoint(), actor=request.user, request=request
        )
        one_time_secret_stash(
            request, kind="webhook_rotated", organization=self.organization, object_id=endpoint.pk
        )
        return self.back(endpoint)


class WebhookDeleteView(_EndpointMixin, TemplateView):
    """GET asks for confirmation; POST deletes the endpoint and its delivery log."""

    template_name = "webhooks/endpoint_confirm_delete.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["endpoint"] = self.get_endpoint()
        return context

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        endpoint = self.get_endpoint()
        services.webhook_endpoint_delete(endpoint=endpoint, actor=request.user, request=request)
        messages.success(request, f"Webhook to {endpoint.url} deleted.")
        return redirect("webhook_list", org_slug=self.organization.slug)


class WebhookRedeliverView(_EndpointMixin, TemplateView):
    """POST sends a delivery again."""

    permission_map = {"POST": "webhooks.manage"}

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        endpoint = self.get_endpoint()
        delivery = (
            selectors.webhook_delivery_list(organization=self.organization, endpoint=endpoint)
            .filter(pk=self.kwargs["delivery_id"])
            .first()
        )
        if delivery is None:
            raise Http404("No such delivery.")
        try:
            services.webhook_delivery_redeliver(
                delivery=delivery, actor=request.user, request=request
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{delivery.event_type} ({delivery.event_id}) is on its way.")
        return self.back(endpoint)
