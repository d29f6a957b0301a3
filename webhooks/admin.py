"""Read-only view of webhooks for provider staff: tenants manage their own."""

from django.contrib import admin

from .models import WebhookDelivery, WebhookEndpoint


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "url", "enabled", "failure_streak", "created_at"]
    list_filter = ["enabled"]
    list_select_related = ["organization"]
    exclude = ["secret"]
    search_fields = ["url", "organization__slug"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "organization",
        "event_type",
        "status",
        "attempt_count",
        "last_response_status",
        "latency_ms",
        "created_at",
    ]
    list_filter = ["status"]
    list_select_related = ["organization"]
    search_fields = ["event_id", "event_type"]
