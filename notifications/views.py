"""The notification centre, the header badge and per-user e-mail preferences."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import FormView, ListView, TemplateView

from accounts.views_base import OrganizationViewMixin
from portal.errors import DomainError

from .forms import NotificationPreferencesForm
from .selectors import notification_list, notification_preferences_get, notification_unread_count
from .services import (
    notification_mark_all_read,
    notification_mark_read,
    notification_preferences_set,
)


class NotificationListView(LoginRequiredMixin, ListView):
    template_name = "notifications/notification_list.html"
    context_object_name = "notifications"
    paginate_by = 25

    def get_queryset(self):
        return notification_list(user=self.request.user, unread_only=self.unread_only)

    @property
    def unread_only(self) -> bool:
        return self.request.GET.get("show") == "unread"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["unread_only"] = self.unread_only
        return context


class OrganizationNotificationListView(OrganizationViewMixin, NotificationListView):
    """The signed-in user's notifications about one organization."""

    def get_queryset(self):
        return super().get_queryset().filter(organization=self.organization)


class NotificationBadgeView(LoginRequiredMixin, TemplateView):
    """The header link with the unread count, fetched by htmx so pages pay no query for it."""

    template_name = "partials/notifications_badge_link.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["unread_count"] = notification_unread_count(user=self.request.user)
        return context


def _is_local(request, target: str) -> bool:
    """A path or URL on this site ("//elsewhere" is another site, not a path)."""
    return url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )


def _safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or ""
    return target if _is_local(request, target) else fallback


class NotificationOpenView(LoginRequiredMixin, View):
    """Mark one notification read, then go where it points (or back to the centre)."""

    http_method_names = ["post"]

    def post(self, request, pk: int) -> HttpResponse:
        try:
            notification = notification_mark_read(user=request.user, notification_id=pk)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("notification_list")
        if request.POST.get("open") and _is_local(request, notification.url):
            return redirect(notification.url)
        return redirect(_safe_next(request, "notification_list"))


class NotificationMarkAllReadView(LoginRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request) -> HttpResponse:
        count = notification_mark_all_read(user=request.user)
        messages.success(request, f"Marked {count} notification{'s' if count != 1 else ''} read.")
        return redirect(_safe_next(request, "notification_list"))


class NotificationPreferencesView(LoginRequiredMixin, FormView):
    template_name = "notifications/notification_preferences.html"
    form_class = NotificationPreferencesForm

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["initial_deliveries"] = notification_preferences_get(user=self.request.user)
        return kwargs

    def form_valid(self, form):
        try:
            notification_preferences_set(user=self.request.user, deliveries=form.cleaned_data)
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            return self.form_invalid(form)
        messages.success(self.request, "Your notification preferences are saved.")
        return redirect("notification_preferences")
