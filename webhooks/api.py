"""REST API of webhooks: endpoints (secret shown once, rotate), their delivery log, redelivery.

Owners and admins only (``webhooks.manage``), for reading too: an endpoint's URL and its
deliveries' payloads are the organization's integration details.
"""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from portal.api.base import OrganizationGenericViewSet

from . import selectors, services
from .events import EVENT_CHOICES
from .models import WebhookDelivery, WebhookEndpoint

TAGS = ["webhooks"]


class WebhookEndpointSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_CHOICES))

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "events",
            "enabled",
            "disabled_reason",
            "disabled_at",
            "failure_streak",
            "failing_since",
            "secret_rotated_at",
            "created_at",
        ]
        read_only_fields = fields


class IssuedWebhookEndpointSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="Signs every delivery. Shown only in this response: store it now.",
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointCreateSerializer(serializers.Serializer):
    url = serializers.CharField(
        max_length=500, help_text="Where events are POSTed: https:// (http:// outside production)."
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_CHOICES), allow_empty=False
    )


class WebhookEndpointUpdateSerializer(WebhookEndpointCreateSerializer):
    url = serializers.CharField(max_length=500, required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_CHOICES), allow_empty=False, required=False
    )
    enabled = serializers.BooleanField(
        required=False, help_text="Enabling a disabled endpoint clears its failure streak."
    )


class WebhookDeliverySerializer(serializers.ModelSerializer):
    endpoint = serializers.IntegerField(source="endpoint_id", read_only=True)
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices, read_only=True)
    payload = serializers.JSONField(read_only=True, help_text="The JSON body sent.")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint",
            "event_id",
            "event_type",
            "status",
            "attempt_count",
            "last_response_status",
            "latency_ms",
            "last_error",
            "last_attempt_at",
            "next_attempt_at",
            "delivered_at",
            "created_at",
            "payload",
        ]
        read_only_fields = fields


class WebhookDeliveryFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=WebhookDelivery.Status.choices)
    event_type = django_filters.CharFilter(
        lookup_expr="startswith", help_text="Event types starting with this, e.g. `request.`."
    )

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event_type"]


def _issued(endpoint: WebhookEndpoint, code: int) -> Response:
    return Response(IssuedWebhookEndpointSerializer(endpoint).data, status=code)


@extend_schema_view(
    list=extend_schema(tags=TAGS, description="The organization's webhook endpoints."),
    retrieve=extend_schema(tags=TAGS),
    create=extend_schema(
        tags=TAGS,
        request=WebhookEndpointCreateSerializer,
        responses={201: IssuedWebhookEndpointSerializer},
        description=(
            "Register an endpoint for the events listed. The response is the only time the "
            "signing secret is shown (docs/webhooks.md: verifying a delivery)."
        ),
    ),
    partial_update=extend_schema(
        tags=TAGS,
        request=WebhookEndpointUpdateSerializer,
        responses=WebhookEndpointSerializer,
        description="Change the URL, description or events; disable or enable it again.",
    ),
    destroy=extend_schema(
        tags=TAGS,
        responses={204: OpenApiResponse(description="Deleted, with its delivery log.")},
    ),
)
class WebhookEndpointViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationGenericViewSet
):
    permission_map = {
        "GET": "webhooks.manage",
        "POST": "webhooks.manage",
        "PATCH": "webhooks.manage",
        "DELETE": "webhooks.manage",
    }
    serializer_class = WebhookEndpointSerializer
    ordering_fields = ["created_at", "url"]
    ordering = ["-created_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if self.is_schema_generation():
            return WebhookEndpoint.all_objects.none()
        return WebhookEndpoint.objects.for_organization(self.organization)

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = WebhookEndpointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = services.webhook_endpoint_create(
            organization=self.organization,
            actor=request.user,
            request=request,
            **serializer.validated_data,
        )
        return _issued(endpoint, status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        serializer = WebhookEndpointUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = services.webhook_endpoint_update(
            endpoint=self.get_object(),
            actor=request.user,
            request=request,
            **serializer.validated_data,
        )
        return Response(WebhookEndpointSerializer(endpoint).data)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        services.webhook_endpoint_delete(
            endpoint=self.get_object(), actor=request.user, request=request
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        tags=TAGS,
        request=None,
        responses={200: IssuedWebhookEndpointSerializer},
        description=(
            "Replace the signing secret. The new one signs every delivery from now on and is "
            "shown only in this response."
        ),
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, *args, **kwargs) -> Response:
        endpoint = services.webhook_endpoint_rotate_secret(
            endpoint=self.get_object(), actor=request.user, request=request
        )
        return _issued(endpoint, status.HTTP_200_OK)

    @extend_schema(
        tags=TAGS,
        filters=False,
        parameters=[
            OpenApiParameter(
                "status",
                str,
                enum=WebhookDelivery.Status.values,
                many=True,
                explode=True,
                description="Only deliveries in these statuses.",
            ),
            OpenApiParameter(
                "event_type", str, description="Event types starting with this, e.g. `request.`."
            ),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
        responses=WebhookDeliverySerializer(many=True),
        description="The endpoint's delivery log, newest first: status, attempts, latency.",
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, *args, **kwargs) -> Response:
        endpoint = self.get_object()
        filterset = WebhookDeliveryFilter(
            request.query_params,
            queryset=selectors.webhook_delivery_list(
                organization=self.organization, endpoint=endpoint
            ),
        )
        if not filterset.is_valid():
            raise exceptions.ValidationError(filterset.errors)
        page = self.paginate_queryset(filterset.qs)
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)


@extend_schema_view(retrieve=extend_schema(tags=TAGS, description="One delivery, with its body."))
class WebhookDeliveryViewSet(mixins.RetrieveModelMixin, OrganizationGenericViewSet):
    permission_map = {"GET": "webhooks.manage", "POST": "webhooks.manage"}
    serializer_class = WebhookDeliverySerializer

    def get_queryset(self):
        if self.is_schema_generation():
            return WebhookDelivery.all_objects.none()
        return selectors.webhook_delivery_list(organization=self.organization)

    @extend_schema(
        tags=TAGS,
        request=None,
        responses={202: WebhookDeliverySerializer},
        description=(
            "Send the delivery again now: the same event id and body, freshly signed, with "
            "retries of its own. 409 when its endpoint is disabled."
        ),
    )
    @action(detail=True, methods=["post"])
    def redeliver(self, request: Request, *args, **kwargs) -> Response:
        delivery = services.webhook_delivery_redeliver(
            delivery=self.get_object(), actor=request.user, request=request
        )
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
