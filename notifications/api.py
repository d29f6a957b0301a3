"""REST API of notifications: the caller's own, about one organization, and their preferences.

Notifications belong to a person, never to the organization as a whole: every route here
reads and changes only the rows whose recipient is the caller. A session is its user; an
organization API key acts for the owner or admin who created it (as it does everywhere in the
API), so a key sees and marks that person's notifications about the key's organization, and
nobody else's. Provider keys belong to no person in an organization and get 404 on these
routes like on every organization route.

Marking read changes nothing of the organization, so it needs only ``notifications.read``
(every role, as ``org.view``; a key's ``write`` scope since it is a POST), which a suspended
organization's members keep.
"""

from __future__ import annotations

import django_filters
from django.conf import settings
from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from portal.api.authentication import api_key_of
from portal.api.base import OrganizationGenericViewSet, PortalAPIView
from portal.api.filters import UtcIsoDateTimeFilter

from . import selectors, services
from .events import EventGroup
from .models import Delivery, Notification

TAGS = ["notifications"]

NOTIFICATION_EXAMPLE = {
    "id": 4711,
    "event": "request.approved",
    "title": "REQ-42 is approved",
    "body": "64 x H100 SXM in us-east-1 from 2027-01-04 00:00 to 2027-02-01 00:00 UTC.",
    "url": "https://portal.example.com/o/acme/requests/42/",
    "read": False,
    "read_at": None,
    "created_at": "2026-11-25T15:04:05.123456Z",
}


class NotificationSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="Its page in the portal (absolute URL).")
    read = serializers.BooleanField(source="is_read", read_only=True)

    class Meta:
        model = Notification
        fields = ["id", "event", "title", "body", "url", "read", "read_at", "created_at"]
        read_only_fields = fields

    def get_url(self, notification: Notification) -> str:
        url = notification.url
        if url and not url.startswith(("http://", "https://")):
            return f"{settings.SITE_URL}{url}"
        return url


class NotificationFilter(django_filters.FilterSet):
    unread = django_filters.BooleanFilter(
        field_name="read_at",
        lookup_expr="isnull",
        help_text="`true`: only unread ones; `false`: only those already read.",
    )
    event = django_filters.CharFilter(
        lookup_expr="startswith",
        help_text="Events starting with this, e.g. `request.` or `quota.utilization`.",
    )
    since = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Created at or after this instant."
    )
    until = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="Created before this instant."
    )

    class Meta:
        model = Notification
        fields = ["unread", "event", "since", "until"]


class MarkAllReadSerializer(serializers.Serializer):
    up_to_id = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        help_text="Only notifications with this id or a smaller one: the newest you have seen.",
    )
    up_to = serializers.DateTimeField(
        required=False,
        help_text="Only notifications created at or before this instant.",
    )


class MarkedReadSerializer(serializers.Serializer):
    marked_read = serializers.IntegerField(help_text="How many were unread and are read now.")


@extend_schema_view(
    list=extend_schema(
        tags=TAGS,
        description=(
            "The caller's notifications about this organization, newest first (an API key: "
            "those of the person who created it)."
        ),
        examples=[
            # drf-spectacular wraps a list's example in the page envelope itself.
            OpenApiExample("A page", value=NOTIFICATION_EXAMPLE, response_only=True)
        ],
    ),
    retrieve=extend_schema(
        tags=TAGS,
        examples=[OpenApiExample("Unread", value=NOTIFICATION_EXAMPLE, response_only=True)],
    ),
)
class NotificationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationGenericViewSet
):
    permission_map = {"GET": "org.view", "POST": "notifications.read"}
    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]

    def get_queryset(self):
        if self.is_schema_generation():
            return Notification.objects.none()
        return selectors.notification_list(user=self.request.user, organization=self.organization)

    @extend_schema(
        tags=TAGS,
        request=None,
        responses={200: NotificationSerializer},
        description="Mark one notification read (again: no change). Answers the notification.",
        examples=[
            OpenApiExample(
                "Read",
                value={**NOTIFICATION_EXAMPLE, "read": True, "read_at": "2026-11-25T15:10:00Z"},
                response_only=True,
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def read(self, request: Request, *args, **kwargs) -> Response:
        notification = services.notification_mark_read(
            user=request.user, notification_id=self.get_object().pk
        )
        return Response(NotificationSerializer(notification).data)

    @extend_schema(
        tags=TAGS,
        request=MarkAllReadSerializer,
        responses={200: MarkedReadSerializer},
        description=(
            "Mark the caller's unread notifications about this organization read: all of "
            "them, or only up to the newest one you have seen (`up_to_id`, `up_to`), so "
            "those that arrived since stay unread. The body may be empty."
        ),
        examples=[
            OpenApiExample("Up to the last one seen", value={"up_to_id": 4711}, request_only=True),
            OpenApiExample("Marked", value={"marked_read": 12}, response_only=True),
        ],
    )
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request: Request, *args, **kwargs) -> Response:
        serializer = MarkAllReadSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        count = services.notification_mark_all_read(
            user=request.user, organization=self.organization, **serializer.validated_data
        )
        return Response(MarkedReadSerializer({"marked_read": count}).data)


# --- Preferences -------------------------------------------------------------------------------
class NotificationPreferencesSerializer(serializers.Serializer):
    """One delivery per event group (docs/notifications.md)."""

    def get_fields(self):
        return {
            group.value: serializers.ChoiceField(
                choices=Delivery.choices, help_text=f"{group.label}."
            )
            for group in EventGroup
        }


PREFERENCES_EXAMPLE = {
    "requests": "immediate",
    "reservations": "digest",
    "approvals": "immediate",
    "reminders": "immediate",
    "account": "immediate",
    "contracts": "immediate",
    "quotas": "digest",
    "other": "none",
}


class NotificationPreferencesView(PortalAPIView):
    """The caller's delivery per event group, for all their organizations.

    Preferences are a person's own choice, the same in every organization they belong to: an
    API key (which acts for its creator in one organization) may read them but not change
    them.
    """

    @extend_schema(
        tags=TAGS,
        responses=NotificationPreferencesSerializer,
        description=(
            "How you are told of each event group: `immediate` (e-mail at once), `digest` "
            "(one daily e-mail) or `none` (in the portal only)."
        ),
        examples=[OpenApiExample("Choices", value=PREFERENCES_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.notification_preferences_get(user=request.user))

    @extend_schema(
        tags=TAGS,
        request=NotificationPreferencesSerializer,
        responses=NotificationPreferencesSerializer,
        description="Replace every group's delivery (PATCH: only the groups sent). Sessions only.",
        examples=[OpenApiExample("Choices", value=PREFERENCES_EXAMPLE)],
    )
    def put(self, request: Request) -> Response:
        return self._update(request, partial=False)

    @extend_schema(
        tags=TAGS,
        request=NotificationPreferencesSerializer(partial=True),
        responses=NotificationPreferencesSerializer,
        description="Change the delivery of the groups sent; the others keep theirs.",
        examples=[OpenApiExample("Quota alerts off", value={"quotas": "none"}, request_only=True)],
    )
    def patch(self, request: Request) -> Response:
        return self._update(request, partial=True)

    def _update(self, request: Request, *, partial: bool) -> Response:
        if api_key_of(request) is not None:
            raise exceptions.PermissionDenied(
                "Notification preferences are a person's own choice for all their "
                "organizations: change them signed in, not with an API key."
            )
        serializer = NotificationPreferencesSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        services.notification_preferences_set(
            user=request.user, deliveries=dict(serializer.validated_data)
        )
        return Response(
            selectors.notification_preferences_get(user=request.user), status=status.HTTP_200_OK
        )
