"""What every request and reservation page shares."""

from __future__ import annotations

import zoneinfo

from django import forms
from django.http import HttpResponse
from django.utils import timezone

from portal.errors import DomainError


class OrganizationTimeZoneMixin:
    """Show and read times in the organization's time zone for the whole request.

    Put after ``OrganizationViewMixin`` (which resolves ``self.organization``). The response
    is rendered inside the override, since template responses render lazily otherwise.
    """

    def dispatch(self, request, *args, **kwargs) -> HttpResponse:
        with timezone.override(self.time_zone()):
            response = super().dispatch(request, *args, **kwargs)
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
        return response

    def time_zone(self) -> zoneinfo.ZoneInfo:
        return self.organization.tzinfo

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["time_zone_name"] = str(self.time_zone())
        return context


def form_add_domain_error(form: forms.Form, exc: DomainError) -> None:
    """Show a service's refusal next to the field it names (or above the form)."""
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, exc.message)
