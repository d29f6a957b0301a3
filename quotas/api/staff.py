"""Provider staff API: the approvals inbox (approve, reject, counter-offer, comment) and the
capacity pools with what is held and free now. Staff sessions, or provider keys with the
``approvals`` scope (acting for the superuser or staff member who created them)."""

from __future__ import annotations

from collections.abc import Callable

import django_filters
from django.db import transaction
from django.db.models import F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.selectors import organization_list_for_staff
from portal.api.base import StaffGenericViewSet
from portal.api.etags import check_if_match
from portal.api.schema import IF_MATCH_PARAMETER
from quotas import services
from quotas.models import CapacityHold, CapacityPool, CapacityRequest
from quotas.selectors import requests as request_selectors
from quotas.workflow import RequestState

from .fields import InstantField, RegionCodeField, SkuCodeField
from .requests import (
    CapacityRequestDetailSerializer,
    CapacityRequestSerializer,
    CommentCreateSerializer,
    RequestCommentSerializer,
    request_detail_response,
    request_etag,
)


class StaffRequestSerializer(CapacityRequestSerializer):
    organization = serializers.CharField(source="organization.slug")

    class Meta(CapacityRequestSerializer.Meta):
        fields = ["organization", *CapacityRequestSerializer.Meta.fields]
        read_only_fields = fields


class ApproveSerializer(serializers.Serializer):
    pool = serializers.PrimaryKeyRelatedField(
        queryset=CapacityPool.objects.filter(active=True),
        required=False,
        allow_null=True,
        help_text="The pool to grant from (one of the request's alternatives); default: the "
        "first that fits.",
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField(help_text="Why; the tenant sees it.")


class CounterOfferSerializer(serializers.Serializer):
    gpu_count = serializers.IntegerField(required=False, min_value=1)
    starts_at = InstantField(required=False)
    ends_at = InstantField(required=False)
    region = RegionCodeField(required=False)
    sku = SkuCodeField(required=False)
    note = serializers.CharField(required=False, allow_blank=True, default="")


class StaffRequestFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=RequestState.choices)
    organization = django_filters.CharFilter(field_name="organization__slug")
    sku = django_filters.CharFilter(field_name="sku__code")
    region = django_filters.CharFilter(field_name="region__code")

    class Meta:
        model = CapacityRequest
        fields = ["state", "organization", "sku", "region"]


def _decision_schema(request_serializer, description):
    return extend_schema(
        request=request_serializer,
        responses=CapacityRequestDetailSerializer,
        parameters=[IF_MATCH_PARAMETER],
        description=description,
        tags=["staff"],
    )


@extend_schema_view(
    list=extend_schema(
        tags=["staff"],
        description="Requests awaiting the caller's decision, due first (the inbox).",
    ),
    retrieve=extend_schema(tags=["staff"], responses=CapacityRequestDetailSerializer),
)
class StaffRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, StaffGenericViewSet):
    serializer_class = StaffRequestSerializer
    filterset_class = StaffRequestFilter
    ordering_fields = ["decision_due_at", "created_at", "starts_at"]
    ordering = ["decision_due_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return CapacityRequest.all_objects.none()
        if self.action == "list":
            # The page's pools and alternatives are read once for the page by the list
            # serializer (CapacityRequestListSerializer), not joined or prefetched here.
            return request_selectors.requests_awaiting_decision_for_staff(user=self.request.user)
        return self._visible()

    def _visible(self):
        """Every request of the organizations the caller looks after (for detail and actions)."""
        return CapacityRequest.objects.unscoped_for_staff().filter(
            organization__in=organization_list_for_staff(user=self.request.user)
        )

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        capacity_request = self.get_object()
        return request_detail_response(
            organization=capacity_request.organization, pk=capacity_request.pk
        )

    def _transition(self, call: Callable[[CapacityRequest], object]) -> Response:
        with transaction.atomic():
            capacity_request = (
                self._visible()
                .select_for_update(of=("self",))
                .select_related("organization")
                .filter(pk=self.kwargs["pk"])
                .first()
            )
            if capacity_request is None:
                raise NotFound("No such request.")
            check_if_match(self.request, request_etag(capacity_request))
            call(capacity_request)
        return request_detail_response(
            organization=capacity_request.organization, pk=capacity_request.pk
        )

    @_decision_schema(ApproveSerializer, "Approve (the first or the second approval).")
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, *args, **kwargs) -> Response:
        serializer = ApproveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._transition(
            lambda r: services.capacity_request_approve(
                capacity_request=r, actor=request.user, **serializer.validated_data
            )
        )

    @_decision_schema(RejectSerializer, "Reject, with a reason the tenant sees.")
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, *args, **kwargs) -> Response:
        serializer = RejectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._transition(
            lambda r: services.capacity_request_reject(
                capacity_request=r, actor=request.user, **serializer.validated_data
            )
        )

    @_decision_schema(
        CounterOfferSerializer,
        "Counter-offer fewer GPUs, another window, region or SKU; the capacity is held until "
        "the offer lapses.",
    )
    @action(detail=True, methods=["post"], url_path="counter-offer")
    def counter_offer(self, request: Request, *args, **kwargs) -> Response:
        serializer = CounterOfferSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._transition(
            lambda r: services.capacity_request_counter_offer(
                capacity_request=r, actor=request.user, **serializer.validated_data
            )
        )

    @extend_schema(
        request=CommentCreateSerializer,
        responses={201: RequestCommentSerializer},
        tags=["staff"],
    )
    @action(detail=True, methods=["post"])
    def comments(self, request: Request, *args, **kwargs) -> Response:
        serializer = CommentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        comment = services.request_comment_add(
            capacity_request=self.get_object(),
            author=request.user,
            body=serializer.validated_data["body"],
        )
        return Response(RequestCommentSerializer(comment).data, status=status.HTTP_201_CREATED)


# --- Pools -----------------------------------------------------------------------------------
class PoolSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="sku.code")
    region = serializers.CharField(source="region.code")
    capacity_now = serializers.IntegerField(help_text="Installed GPUs now.")
    held_now = serializers.IntegerField(help_text="GPUs held now (reservations, live offers).")
    free_now = serializers.IntegerField()

    class Meta:
        model = CapacityPool
        fields = ["id", "sku", "region", "active", "capacity_now", "held_now", "free_now"]
        read_only_fields = fields


def pool_list_with_levels_now(*, at=None):
    """Pools annotated with installed, held and free GPUs at ``at`` (default now), in one
    query whatever the number of pools (the same rules as quotas.selectors.availability)."""
    at = at or timezone.now()
    capacity = Sum(
        "changes__gpus_delta",
        filter=Q(changes__effective_at__lte=at)
        & (Q(changes__ends_at__isnull=True) | Q(changes__ends_at__gt=at)),
        default=0,
    )
    held = (
        CapacityHold.all_objects.filter(
            pool=OuterRef("pk"),
            released_at__isnull=True,
            starts_at__lte=at,
            ends_at__gt=at,
        )
        .filter(Q(kind=CapacityHold.Kind.RESERVATION) | Q(expires_at__gt=at))
        .order_by()
        .values("pool")
        .annotate(total=Sum("gpu_count"))
        .values("total")
    )
    return (
        CapacityPool.objects.select_related("sku", "region")
        .annotate(capacity_now=capacity)
        .annotate(held_now=Coalesce(Subquery(held), 0))
        .annotate(free_now=F("capacity_now") - F("held_now"))
    )


class PoolFilter(django_filters.FilterSet):
    sku = django_filters.CharFilter(field_name="sku__code")
    region = django_filters.CharFilter(field_name="region__code")

    class Meta:
        model = CapacityPool
        fields = ["sku", "region", "active"]


@extend_schema_view(list=extend_schema(tags=["staff"]), retrieve=extend_schema(tags=["staff"]))
class StaffPoolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, StaffGenericViewSet):
    serializer_class = PoolSerializer
    filterset_class = PoolFilter
    ordering_fields = ["free_now", "held_now", "capacity_now", "region__code", "sku__code"]
    ordering = ["region__code", "sku__code"]

    def get_queryset(self):
        return pool_list_with_levels_now()
