"""Tenant API of capacity requests, reservations, quotas, availability and quotes.

Views are thin: validate the input, call one service or selector, serialize. State changes
honour ``If-Match`` (the ETag is the row's version) and are refused with 409 and the current
state when the workflow does not allow them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta

import django_filters
from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import (
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from portal.api.base import OrganizationAPIView, OrganizationGenericViewSet
from portal.api.etags import check_if_match, etag_for
from portal.api.filters import QueryFilterBackend, StableOrderingFilter, UtcIsoDateTimeFilter
from portal.api.renderers import PortalJSONRenderer
from portal.api.schema import IF_MATCH_PARAMETER
from quotas import services
from quotas.models import (
    CapacityPool,
    CapacityRequest,
    GpuSku,
    Region,
    RequestCheck,
    RequestComment,
    Reservation,
)
from quotas.pricing import quote_price
from quotas.selectors import availability
from quotas.selectors import quotas as quota_selectors
from quotas.selectors import requests as request_selectors
from quotas.workflow import RequestState, ReservationState

from .fields import (
    FastRepresentationMixin,
    FrozenQuoteSerializer,
    InstantField,
    OfferSerializer,
    PoolRefSerializer,
    RegionCodeField,
    SkuCodeField,
    offer_representation,
    pool_for,
    quote_representation,
)
from .request_create import create_input_validate
from .request_list import RequestListRows

EARLIEST_START_HORIZON = timedelta(days=365)


# --- Serializers -----------------------------------------------------------------------------
class CapacityRequestListSerializer(serializers.ListSerializer):
    """A page of requests: the SKU and region codes of the pools the page names (chosen pool,
    offered pool) come from one small query for the page, instead of four more joins in the
    page's query (whose planning cost more than running it)."""

    def to_representation(self, data):
        rows = list(data.all() if hasattr(data, "all") else data)
        self.child.pool_codes, self.child.related_codes = (
            request_selectors.capacity_request_page_refs(
                request_ids=[row.pk for row in rows],
                pool_ids=[pk for row in rows for pk in (row.pool_id, row.offer_pool_id) if pk],
            )
        )
        try:
            return [self.child.to_representation(row) for row in rows]
        finally:
            self.child.pool_codes = self.child.related_codes = None


class CapacityRequestSerializer(FastRepresentationMixin, serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    sku = serializers.CharField(source="sku.code")
    region = serializers.CharField(source="region.code")
    alternative_skus = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)
    alternative_regions = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)
    requested_by = serializers.EmailField(source="requested_by.email", allow_null=True)
    pool = serializers.SerializerMethodField(help_text="The pool chosen on approval.")
    offer = serializers.SerializerMethodField(help_text="The live offer, if any.")
    quote = serializers.SerializerMethodField(help_text="The price frozen on approval.")

    # {pool id: (sku code, region code)} while serializing a page (CapacityRequestListSerializer);
    # None for one request, whose pools come with it.
    pool_codes: dict[int, tuple[str, str]] | None = None

    class Meta:
        list_serializer_class = CapacityRequestListSerializer
        model = CapacityRequest
        fields = [
            "id",
            "reference",
            "kind",
            "state",
            "sku",
            "region",
            "gpu_count",
            "starts_at",
            "ends_at",
            "on_demand_limit",
            "justification",
            "alternative_skus",
            "alternative_regions",
            "waitlist_if_unavailable",
            "extends_reservation",
            "requested_by",
            "flagged",
            "capacity_available",
            "decision_due_at",
            "decision_reason",
            "pool",
            "offer",
            "quote",
            "submitted_at",
            "state_changed_at",
            "created_at",
            "updated_at",
            "version",
        ]
        read_only_fields = fields

    def _codes(self, pool_id: int, pool: Callable[[], CapacityPool]) -> tuple[str, str]:
        if self.pool_codes is not None and pool_id in self.pool_codes:
            return self.pool_codes[pool_id]
        loaded = pool()
        return loaded.sku.code, loaded.region.code

    @extend_schema_field(PoolRefSerializer(allow_null=True))
    def get_pool(self, obj: CapacityRequest):
        if not obj.pool_id:
            return None
        sku, region = self._codes(obj.pool_id, lambda: obj.pool)
        return {"sku": sku, "region": region}

    @extend_schema_field(OfferSerializer(allow_null=True))
    def get_offer(self, obj: CapacityRequest):
        if not (obj.offer_kind and obj.offer_pool_id):
            return None
        sku, region = self._codes(obj.offer_pool_id, lambda: obj.offer_pool)
        return offer_representation(
            kind=obj.offer_kind,
            sku=sku,
            region=region,
            gpu_count=obj.offer_gpu_count,
            starts_at=obj.offer_starts_at,
            ends_at=obj.offer_ends_at,
            expires_at=obj.offer_expires_at,
            note=obj.offer_note,
        )

    @extend_schema_field(FrozenQuoteSerializer(allow_null=True))
    def get_quote(self, obj: CapacityRequest):
        if obj.quote_total is None:
            return None
        return quote_representation(
            currency=obj.quote_currency,
            rate_per_gpu_hour=obj.quote_rate_per_gpu_hour,
            gpu_hours=obj.quote_gpu_hours,
            total=obj.quote_total,
            source=obj.quote_source,
        )


class RequestCheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    outcome = serializers.ChoiceField(choices=RequestCheck.Outcome.choices)
    reason = serializers.CharField()
    figures = serializers.DictField()
    created_at = serializers.DateTimeField()


class RequestEventSerializer(serializers.Serializer):
    from_state = serializers.CharField()
    to_state = serializers.CharField()
    actor = serializers.EmailField(source="actor.email", allow_null=True, default=None)
    reason = serializers.CharField()
    at = serializers.DateTimeField()


class RequestCommentSerializer(serializers.ModelSerializer):
    author = serializers.EmailField(source="author.email", allow_null=True, default=None)

    class Meta:
        model = RequestComment
        fields = ["id", "author", "body", "created_at"]
        read_only_fields = fields


class CapacityRequestDetailSerializer(CapacityRequestSerializer):
    """A request with its latest checks, its timeline and comments (set by
    ``request_detail_response``)."""

    checks = RequestCheckSerializer(
        many=True, source="latest_checks", help_text="The latest run of the automatic checks."
    )
    timeline = RequestEventSerializer(many=True, source="timeline_events")
    comments = RequestCommentSerializer(many=True, source="comment_list")
    reservation = serializers.IntegerField(
        allow_null=True, source="reservation_pk", help_text="Its reservation's id, once approved."
    )

    class Meta(CapacityRequestSerializer.Meta):
        fields = [*CapacityRequestSerializer.Meta.fields, "checks", "timeline", "comments",
                  "reservation"]  # fmt: skip
        read_only_fields = fields


class CapacityRequestCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=CapacityRequest.Kind.choices, default=CapacityRequest.Kind.RESERVATION
    )
    sku = SkuCodeField()
    region = RegionCodeField()
    gpu_count = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    starts_at = InstantField(required=False, allow_null=True)
    ends_at = InstantField(required=False, allow_null=True)
    on_demand_limit = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    justification = serializers.CharField(required=False, allow_blank=True, default="")
    alternative_skus = SkuCodeField(many=True, required=False)
    alternative_regions = RegionCodeField(many=True, required=False)
    waitlist_if_unavailable = serializers.BooleanField(required=False, default=False)
    submit = serializers.BooleanField(
        default=True, help_text="false: keep it as a draft; true: submit it at once."
    )


class CapacityRequestUpdateSerializer(serializers.Serializer):
    sku = SkuCodeField(required=False)
    region = RegionCodeField(required=False)
    gpu_count = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    starts_at = InstantField(required=False, allow_null=True)
    ends_at = InstantField(required=False, allow_null=True)
    on_demand_limit = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    justification = serializers.CharField(required=False, allow_blank=True)
    alternative_skus = SkuCodeField(many=True, required=False)
    alternative_regions = RegionCodeField(many=True, required=False)
    waitlist_if_unavailable = serializers.BooleanField(required=False)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class SignOffSerializer(serializers.Serializer):
    approve = serializers.BooleanField(help_text="true: on to the provider; false: turn down.")
    reason = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Required to turn down."
    )


class CommentCreateSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=5000)


class ReservationSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    sku = serializers.CharField(source="pool.sku.code")
    region = serializers.CharField(source="pool.region.code")

    class Meta:
        model = Reservation
        fields = [
            "id",
            "reference",
            "request",
            "state",
            "sku",
            "region",
            "gpu_count",
            "starts_at",
            "ends_at",
            "currency",
            "rate_per_gpu_hour",
            "gpu_hours",
            "total",
            "price_source",
            "contract",
            "activated_at",
            "ended_at",
            "end_reason",
            "state_changed_at",
            "created_at",
            "updated_at",
            "version",
        ]
        read_only_fields = fields


class ReservationExtendSerializer(serializers.Serializer):
    ends_at = InstantField(help_text="The new end (after the current end).")
    justification = serializers.CharField(required=False, allow_blank=True, default="")


# --- Helpers ---------------------------------------------------------------------------------
def request_etag(capacity_request: CapacityRequest) -> str:
    return etag_for("request", capacity_request.pk, capacity_request.version)


def reservation_etag(reservation: Reservation) -> str:
    return etag_for("reservation", reservation.pk, reservation.version)


def _with_etag(data, etag: str, status_code: int = status.HTTP_200_OK) -> Response:
    response = Response(data, status=status_code)
    response["ETag"] = etag
    return response


def request_detail_response(*, organization, pk: int, status_code=status.HTTP_200_OK) -> Response:
    """A request with its checks, timeline, comments and reservation, and its ETag."""
    capacity_request = request_selectors.capacity_request_get(organization=organization, pk=pk)
    capacity_request.latest_checks = request_selectors.request_checks_latest(
        capacity_request=capacity_request
    )
    capacity_request.timeline_events = request_selectors.request_timeline(
        capacity_request=capacity_request
    )
    capacity_request.comment_list = (
        RequestComment.objects.for_organization(organization)
        .filter(request=capacity_request)
        .select_related("author")
        .order_by("created_at", "id")
    )
    capacity_request.reservation_pk = (
        Reservation.objects.for_organization(organization)
        .filter(request=capacity_request)
        .values_list("pk", flat=True)
        .first()
    )
    return _with_etag(
        CapacityRequestDetailSerializer(capacity_request).data,
        request_etag(capacity_request),
        status_code,
    )


def new_request_detail_response(
    *, capacity_request: CapacityRequest, with_alternatives: bool
) -> Response:
    """``request_detail_response`` of a request just created (201), from the objects in hand:
    a new request has no checks, comments or reservation yet, and its SKU, region and
    requester came with it; its timeline too when the service kept it (``recorded_events``),
    else it is read (as are its alternatives, if any)."""
    capacity_request.latest_checks = []
    capacity_request.comment_list = []
    capacity_request.reservation_pk = None
    recorded = getattr(capacity_request, "recorded_events", None)
    capacity_request.timeline_events = (
        recorded
        if recorded is not None
        else request_selectors.request_timeline(capacity_request=capacity_request)
    )
    serializer = CapacityRequestDetailSerializer(capacity_request)
    ids = [capacity_request.pk]
    serializer.related_codes = {
        relation: request_selectors.capacity_request_alternative_codes(
            request_ids=ids, relation=relation
        )
        if with_alternatives
        else {}
        for relation in ("alternative_skus", "alternative_regions")
    }
    return _with_etag(serializer.data, request_etag(capacity_request), status.HTTP_201_CREATED)


class RequestFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=RequestState.choices)
    kind = django_filters.ChoiceFilter(choices=CapacityRequest.Kind.choices)
    sku = django_filters.CharFilter(field_name="sku__code")
    region = django_filters.CharFilter(field_name="region__code")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    starts_after = UtcIsoDateTimeFilter(field_name="starts_at", lookup_expr="gte")
    starts_before = UtcIsoDateTimeFilter(field_name="starts_at", lookup_expr="lt")

    class Meta:
        model = CapacityRequest
        fields = ["state", "kind", "sku", "region"]


class ReservationFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=ReservationState.choices)
    sku = django_filters.CharFilter(field_name="pool__sku__code")
    region = django_filters.CharFilter(field_name="pool__region__code")
    starts_after = UtcIsoDateTimeFilter(field_name="starts_at", lookup_expr="gte")
    starts_before = UtcIsoDateTimeFilter(field_name="starts_at", lookup_expr="lt")
    ends_after = UtcIsoDateTimeFilter(field_name="ends_at", lookup_expr="gt")

    class Meta:
        model = Reservation
        fields = ["state", "sku", "region"]


def _action_schema(request_serializer=None, response=None, description="", status_code=200):
    return extend_schema(
        request=request_serializer,
        responses={status_code: response or CapacityRequestDetailSerializer},
        parameters=[IF_MATCH_PARAMETER],
        description=description,
        tags=["requests"],
    )


# --- Requests --------------------------------------------------------------------------------
@extend_schema_view(
    list=extend_schema(tags=["requests"]),
    retrieve=extend_schema(tags=["requests"], responses=CapacityRequestDetailSerializer),
    create=extend_schema(
        tags=["requests"],
        request=CapacityRequestCreateSerializer,
        responses={201: CapacityRequestDetailSerializer},
        description=(
            "Create a reservation request (sku, region, gpu_count, starts_at, ends_at) or an "
            "on-demand quota increase (kind quota_increase, sku, region, on_demand_limit); "
            "submitted at once unless `submit` is false. The automatic checks run after."
        ),
    ),
    partial_update=extend_schema(
        tags=["requests"],
        request=CapacityRequestUpdateSerializer,
        responses=CapacityRequestDetailSerializer,
        parameters=[IF_MATCH_PARAMETER],
        description="Edit a draft.",
    ),
)
class CapacityRequestViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationGenericViewSet
):
    permission_map = {"GET": "requests.view", "POST": "requests.create", "PATCH": "requests.create"}
    action_capabilities = {"sign_off": "requests.sign_off"}
    serializer_class = CapacityRequestSerializer
    renderer_classes = [PortalJSONRenderer]  # the list's rows come encoded
    filter_backends = [QueryFilterBackend, StableOrderingFilter]
    filterset_class = RequestFilter
    ordering_fields = ["created_at", "starts_at", "decision_due_at", "state_changed_at"]
    ordering = ["-created_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        if self.is_schema_generation():
            return CapacityRequest.all_objects.none()
        return request_selectors.capacity_request_list(organization=self.organization)

    def list(self, request: Request, *args, **kwargs) -> Response:
        # The filter backends narrow and order the requests; the page is read as plain rows
        # (request_list.py): the same body as the serializer's, at a fraction of the cost.
        rows = RequestListRows.for_view(view=self, organization=self.organization)
        return self.get_paginated_response(self.paginate_queryset(rows))

    def _detail(self, capacity_request: CapacityRequest, status_code=status.HTTP_200_OK):
        return request_detail_response(
            organization=self.organization, pk=capacity_request.pk, status_code=status_code
        )

    def _locked(self) -> CapacityRequest:
        """The request, locked for the transaction, after checking If-Match against it."""
        capacity_request = (
            CapacityRequest.objects.for_organization(self.organization)
            .select_for_update(of=("self",))
            .filter(pk=self.kwargs["pk"])
            .first()
        )
        if capacity_request is None:
            raise NotFound("No such request.")
        check_if_match(self.request, request_etag(capacity_request))
        return capacity_request

    def _transition(self, call: Callable[[CapacityRequest], object]) -> Response:
        with transaction.atomic():
            capacity_request = self._locked()
            call(capacity_request)
        return self._detail(capacity_request)

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        return self._detail(self.get_object())

    def create(self, request: Request, *args, **kwargs) -> Response:
        # CapacityRequestCreateSerializer's validation, with the SKU, the region and their
        # pool read in one statement (request_create.py).
        validated, pool = create_input_validate(
            request.data, serializer_class=CapacityRequestCreateSerializer
        )
        capacity_request = services.capacity_request_create(
            organization=self.organization, actor=request.user, pool=pool, **validated
        )
        return new_request_detail_response(
            capacity_request=capacity_request,
            with_alternatives=bool(
                validated.get("alternative_skus") or validated.get("alternative_regions")
            ),
        )

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        serializer = CapacityRequestUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return self._transition(
            lambda r: services.capacity_request_update(
                capacity_request=r, actor=request.user, **serializer.validated_data
            )
        )

    @_action_schema(description="Submit a draft.")
    @action(detail=True, methods=["post"])
    def submit(self, request: Request, *args, **kwargs) -> Response:
        return self._transition(
            lambda r: services.capacity_request_submit(capacity_request=r, actor=request.user)
        )

    @_action_schema(
        SignOffSerializer,
        description="An owner or admin signs off a member's request, or turns it down.",
    )
    @action(detail=True, methods=["post"], url_path="sign-off")
    def sign_off(self, request: Request, *args, **kwargs) -> Response:
        serializer = SignOffSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._transition(
            lambda r: services.capacity_request_sign_off(
                capacity_request=r, actor=request.user, **serializer.validated_data
            )
        )

    @_action_schema(ReasonSerializer, description="Withdraw a request not yet decided.")
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, *args, **kwargs) -> Response:
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._transition(
            lambda r: services.capacity_request_withdraw(
                capacity_request=r, actor=request.user, **serializer.validated_data
            )
        )

    @_action_schema(description="Accept the live offer (a counter-offer or a waitlist offer).")
    @action(detail=True, methods=["post"], url_path="accept-offer")
    def accept_offer(self, request: Request, *args, **kwargs) -> Response:
        return self._transition(
            lambda r: services.capacity_request_accept_offer(capacity_request=r, actor=request.user)
        )

    @_action_schema(ReasonSerializer, description="Decline the live offer.")
    @action(detail=True, methods=["post"], url_path="decline-offer")
    def decline_offer(self, request: Request, *args, **kwargs) -> Response:
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._transition(
            lambda r: services.capacity_request_decline_offer(
                capacity_request=r, actor=request.user, **serializer.validated_data
            )
        )

    @_action_schema(description="Join the waitlist (when no capacity fits).")
    @action(detail=True, methods=["post"])
    def waitlist(self, request: Request, *args, **kwargs) -> Response:
        return self._transition(
            lambda r: services.capacity_request_waitlist(capacity_request=r, actor=request.user)
        )

    @extend_schema(
        request=CommentCreateSerializer,
        responses={201: RequestCommentSerializer},
        tags=["requests"],
        description="Comment on a request (seen by the organization and its approvers).",
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


# --- Reservations ----------------------------------------------------------------------------
def _reservation_action_schema(request_serializer=None, response=None, description="", code=200):
    return extend_schema(
        request=request_serializer,
        responses={code: response or ReservationSerializer},
        parameters=[IF_MATCH_PARAMETER],
        description=description,
        tags=["reservations"],
    )


@extend_schema_view(
    list=extend_schema(tags=["reservations"]), retrieve=extend_schema(tags=["reservations"])
)
class ReservationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationGenericViewSet
):
    permission_map = {"GET": "requests.view", "POST": "reservations.manage"}
    serializer_class = ReservationSerializer
    filterset_class = ReservationFilter
    ordering_fields = ["starts_at", "ends_at", "created_at"]
    ordering = ["starts_at"]
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self):
        if self.is_schema_generation():
            return Reservation.all_objects.none()
        return request_selectors.reservation_list(organization=self.organization)

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        reservation = self.get_object()
        return _with_etag(self.get_serializer(reservation).data, reservation_etag(reservation))

    def _transition(self, call: Callable[[Reservation], object], *, created_request=False):
        with transaction.atomic():
            reservation = (
                Reservation.objects.for_organization(self.organization)
                .select_for_update(of=("self",))
                .filter(pk=self.kwargs["pk"])
                .first()
            )
            if reservation is None:
                raise NotFound("No such reservation.")
            check_if_match(self.request, reservation_etag(reservation))
            result = call(reservation)
        if created_request:
            return request_detail_response(
                organization=self.organization, pk=result.pk, status_code=status.HTTP_201_CREATED
            )
        reservation = self.get_queryset().get(pk=reservation.pk)
        return _with_etag(self.get_serializer(reservation).data, reservation_etag(reservation))

    @_reservation_action_schema(ReasonSerializer, description="Cancel before it starts.")
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, *args, **kwargs) -> Response:
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._transition(
            lambda r: services.reservation_cancel(
                reservation=r, actor=request.user, **serializer.validated_data
            )
        )

    @_reservation_action_schema(ReasonSerializer, description="Release an active one early.")
    @action(detail=True, methods=["post"])
    def release(self, request: Request, *args, **kwargs) -> Response:
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._transition(
            lambda r: services.reservation_release_early(
                reservation=r, actor=request.user, **serializer.validated_data
            )
        )

    @_reservation_action_schema(
        ReservationExtendSerializer,
        CapacityRequestDetailSerializer,
        description="Ask to extend: creates and submits a request for [current end, ends_at).",
        code=201,
    )
    @action(detail=True, methods=["post"])
    def extend(self, request: Request, *args, **kwargs) -> Response:
        serializer = ReservationExtendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._transition(
            lambda r: services.reservation_extend(
                reservation=r, actor=request.user, **serializer.validated_data
            ),
            created_request=True,
        )


# --- Quotas, availability, quotes ------------------------------------------------------------
class QuotaLineSerializer(serializers.Serializer):
    sku = serializers.CharField()
    region = serializers.CharField()
    reserved = serializers.IntegerField(help_text="GPUs of reservations running at that instant.")
    on_demand = serializers.IntegerField(help_text="The on-demand limit at that instant.")
    total = serializers.IntegerField()


class QuotaNowSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    lines = QuotaLineSerializer(many=True)


class QuotaQuerySerializer(serializers.Serializer):
    at = InstantField(required=False, help_text="Default: now.")


class QuotaPointSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    reserved = serializers.IntegerField()
    on_demand = serializers.IntegerField()
    total = serializers.IntegerField()


class QuotaHistoryQuerySerializer(serializers.Serializer):
    sku = SkuCodeField(queryset=GpuSku.objects.all())
    region = RegionCodeField(queryset=Region.objects.all())
    since = InstantField()
    until = InstantField()

    def validate(self, attrs):
        if attrs["until"] <= attrs["since"]:
            raise serializers.ValidationError({"until": ["Must be after since."]})
        if attrs["until"] - attrs["since"] > timedelta(days=3660):
            raise serializers.ValidationError({"until": ["Ask for ten years at most."]})
        return attrs


class QuotaHistorySerializer(serializers.Serializer):
    sku = serializers.CharField()
    region = serializers.CharField()
    points = QuotaPointSerializer(many=True)


class QuotaView(OrganizationAPIView):
    """The organization's quota per SKU and region at an instant: its running reservations
    plus its on-demand limit."""

    permission_map = {"GET": "requests.view"}

    @extend_schema(parameters=[QuotaQuerySerializer], responses=QuotaNowSerializer, tags=["quotas"])
    def get(self, request: Request, org_slug: str) -> Response:
        query = QuotaQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        at = query.validated_data.get("at") or timezone.now()
        lines = quota_selectors.organization_quota_at(organization=self.organization, at=at)
        skus = dict(
            GpuSku.objects.filter(pk__in={ln.sku_id for ln in lines}).values_list("pk", "code")
        )
        regions = dict(
            Region.objects.filter(pk__in={ln.region_id for ln in lines}).values_list("pk", "code")
        )
        data = {
            "at": at,
            "lines": [
                {
                    "sku": skus[line.sku_id],
                    "region": regions[line.region_id],
                    "reserved": line.reserved,
                    "on_demand": line.on_demand,
                    "total": line.total,
                }
                for line in lines
            ],
        }
        return Response(QuotaNowSerializer(data).data)


class QuotaHistoryView(OrganizationAPIView):
    """The quota of one SKU and region over [since, until), as steps."""

    permission_map = {"GET": "requests.view"}

    @extend_schema(
        parameters=[QuotaHistoryQuerySerializer],
        responses=QuotaHistorySerializer,
        tags=["quotas"],
    )
    def get(self, request: Request, org_slug: str) -> Response:
        query = QuotaHistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        points = quota_selectors.organization_quota_history(
            organization=self.organization, **params
        )
        data = {"sku": params["sku"].code, "region": params["region"].code, "points": points}
        return Response(QuotaHistorySerializer(data).data)


class WindowQuerySerializer(serializers.Serializer):
    sku = SkuCodeField()
    region = RegionCodeField()
    gpu_count = serializers.IntegerField(min_value=1)
    starts_at = InstantField()
    ends_at = InstantField()

    def validate(self, attrs):
        if attrs["ends_at"] <= attrs["starts_at"]:
            raise serializers.ValidationError({"ends_at": ["Must be after starts_at."]})
        return attrs


class AlternativeSerializer(serializers.Serializer):
    region = serializers.CharField(source="pool.region.code")
    free_min = serializers.IntegerField()


class AvailabilitySerializer(serializers.Serializer):
    sku = serializers.CharField()
    region = serializers.CharField()
    gpu_count = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    fits = serializers.BooleanField()
    free_min = serializers.IntegerField(help_text="Least GPUs free at any instant of the window.")
    earliest_start = serializers.DateTimeField(
        allow_null=True,
        help_text="Earliest start (from starts_at, within a year) at which gpu_count fits for "
        "the same duration.",
    )
    alternatives = AlternativeSerializer(many=True, help_text="Other regions where it fits.")


class AvailabilityView(OrganizationAPIView):
    """Can gpu_count GPUs of a SKU in a region fit over [starts_at, ends_at)?"""

    permission_map = {"GET": "requests.view"}

    @extend_schema(
        parameters=[WindowQuerySerializer], responses=AvailabilitySerializer, tags=["quotas"]
    )
    def get(self, request: Request, org_slug: str) -> Response:
        query = WindowQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        pool = pool_for(sku=q["sku"], region=q["region"])
        answer = availability.pool_availability(
            pool=pool,
            gpu_count=q["gpu_count"],
            starts_at=q["starts_at"],
            ends_at=q["ends_at"],
            horizon=EARLIEST_START_HORIZON,
        )
        data = {
            "sku": q["sku"].code,
            "region": q["region"].code,
            "gpu_count": q["gpu_count"],
            "starts_at": q["starts_at"],
            "ends_at": q["ends_at"],
            "fits": answer.free_min >= q["gpu_count"],
            "free_min": answer.free_min,
            "earliest_start": answer.earliest_start,
            "alternatives": answer.alternatives,
        }
        return Response(AvailabilitySerializer(data).data)


class QuoteSerializer(serializers.Serializer):
    sku = serializers.CharField(source="sku_code")
    region = serializers.CharField(source="region_code")
    gpu_count = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    currency = serializers.CharField()
    rate_per_gpu_hour = serializers.DecimalField(max_digits=10, decimal_places=4)
    list_price_per_gpu_hour = serializers.DecimalField(max_digits=10, decimal_places=4)
    source = serializers.ChoiceField(choices=["contract", "list"])
    contract_number = serializers.CharField(allow_null=True)
    gpu_hours = serializers.DecimalField(max_digits=20, decimal_places=4)
    total = serializers.DecimalField(max_digits=20, decimal_places=2)


class QuoteView(OrganizationAPIView):
    """The price of gpu_count GPUs of a SKU in a region over [starts_at, ends_at): the
    contract rate when an active contract covers it, else the list price."""

    permission_map = {"GET": "requests.view"}

    @extend_schema(parameters=[WindowQuerySerializer], responses=QuoteSerializer, tags=["quotas"])
    def get(self, request: Request, org_slug: str) -> Response:
        query = WindowQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        quote = quote_price(organization=self.organization, **q)
        data = {**asdict(quote), "sku_code": q["sku"].code, "region_code": q["region"].code}
        return Response(QuoteSerializer(data).data)
