"""Pages for capacity requests and reservations, for tenants and provider staff."""

from __future__ import annotations

from django.views.generic import TemplateView

from accounts.selectors import organization_list_for_staff
from accounts.views_base import OrganizationViewMixin, StaffViewMixin


class DashboardView(OrganizationViewMixin, TemplateView):
    template_name = "quotas/dashboard.html"


class StaffHomeView(StaffViewMixin, TemplateView):
    template_name = "quotas/staff_home.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["organizations"] = organization_list_for_staff(user=self.request.user)
        return context
