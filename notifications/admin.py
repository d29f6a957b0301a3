from django.contrib import admin

from .models import Notification, NotificationPreference


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "recipient", "organization", "event", "title", "read_at")
    list_filter = ("event", "delivery")
    search_fields = ("recipient__email", "title", "dedupe_key")
    raw_id_fields = ("recipient", "organization")
    readonly_fields = ("created_at", "emailed_at")


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ("user", "group", "delivery", "updated_at")
    raw_id_fields = ("user",)
