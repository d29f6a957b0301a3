"""Usage in the API: the provider's batch ingest, an organization's hourly records and their
aggregates (JSON, or CSV with ``Accept: text/csv``)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiRequest, extend_schema
from rest_framework import exceptions, mixins, serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey
from portal.api.authentication import api_key_of
from portal.api.base import OrganizationAPIView, OrganizationGenericViewSet, PortalAPIView
from portal.api.problems import PROBLEM_CONTENT_TYPE, problem_body
from portal.errors import DomainError
from quotas.api.fields import InstantField, RegionCodeField, SkuCodeField
from quotas.models import GpuSku, Region

from . import selectors
from .models import UsageRecord
from .parsers import CONTENT_TYPES
from .services import UsageBatchRejected, usage_ingest

INGEST_SCOPE = "usage:ingest"
MAX_HOURLY_WINDOW = timedelta(days=31)


class UsageCsvRenderer(BaseRenderer):
    """Rows as CSV: a list of objects, or a page of them (``results``); keys of the first row
    are the header."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type=None, renderer_context=None) -> bytes:
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code >= 400:
            return JSONRenderer().render(data)
        rows = data.get("results", []) if isinstance(data, dict) else data or []
        header = list(rows[0]) if rows else self._empty_header(renderer_context or {})
        out = io.StringIO()
        # Always at least the header line: an empty body would lose its Content-Type in DRF
        # and tell a script nothing about the columns it asked for.
        writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().encode()

    @staticmethod
    def _empty_header(renderer_context: dict) -> list[str]:
        view = renderer_context.get("view")
        header = getattr(view, "csv_header", None)
        if header:
            return list(header)
        if view is not None and hasattr(view, "get_serializer"):
            return list(view.get_serializer().fields)
        return []


class IngestResultSerializer(serializers.Serializer):
    received = serializers.IntegerField(help_text="Records in the batch.")
    inserted = serializers.IntegerField(help_text="Keys that were new.")
    replaced = serializers.IntegerField(help_text="Keys whose figures changed.")
    unchanged = serializers.IntegerField(help_text="Keys sent again with the same figures.")
    duplicates = serializers.IntegerField(
        help_text="Records superseded by a later record with the same key in the batch."
    )


INGEST_DESCRIPTION = """Hourly usage records from the provider's metering, in one batch of up
to hundreds of thousands of rows: a JSON array, NDJSON or CSV (with a header), streamed. Fields:
`organization` (slug or id), `sku` (code), `region` (code), `hour` (ISO 8601 with offset, on the
hour), `gpu_hours` (>= 0, at most 4 decimals), optional `reservation` (id),
`mean_utilization` (0..1) and `source` (default `metering`, or `?source=`).

The natural key (organization, sku, region, reservation, hour, source) makes a record sent
again replace the previous one. One bad record rejects the whole batch (422, nothing written):
`errors` lists the first 100 (row, line, field, message) and `error_count` counts them all.
Provider API keys with the `usage:ingest` scope only. `Idempotency-Key` is not needed (and is
ignored): sending the same batch again changes nothing."""


class UsageIngestView(PortalAPIView):
    # The body is read as a stream by the service: no DRF parser may buffer it.
    parser_classes: list = []
    provider_scope = INGEST_SCOPE

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Skip PortalAPIMixin's Idempotency-Key wrapper, which would read the whole body.
        APIView.initial(self, request, *args, **kwargs)

    def check_access(self, request: Request) -> None:
        api_key: ApiKey | None = api_key_of(request)
        if api_key is None or not api_key.is_provider_key:
            raise exceptions.PermissionDenied(
                f"Only provider API keys with the {INGEST_SCOPE!r} scope can ingest usage."
            )
        self.check_key_scope(request)

    @extend_schema(
        operation_id="usage_ingest",
        summary="Ingest a batch of hourly usage records",
        description=INGEST_DESCRIPTION,
        request={
            media: OpenApiRequest(
                OpenApiTypes.BINARY if media == "text/csv" else OpenApiTypes.OBJECT
            )
            for media in CONTENT_TYPES
        },
        responses={200: IngestResultSerializer},
        examples=[
            OpenApiExample(
                "NDJSON record",
                value={
                    "organization": "acme",
                    "sku": "h100-sxm-80gb",
                    "region": "us-east-1",
                    "hour": "2026-01-31T13:00:00Z",
                    "gpu_hours": "7.5",
                },
                request_only=True,
            )
        ],
        tags=["usage"],
    )
    def post(self, request: Request) -> Response:
        content_type = request.META.get("CONTENT_TYPE", "")
        if not request.META.get("CONTENT_LENGTH"):
            raise DomainError("Send the batch as the request body.", field="body")
        try:
            result = usage_ingest(
                stream=request._request,
                content_type=content_type,
                source_label=request.query_params.get("source") or None,
                length=int(request.META["CONTENT_LENGTH"]),
            )
        except UsageBatchRejected as exc:
            body = problem_body(
                status_code=exc.status_code,
                code=exc.code,
                detail=exc.message,
                instance=request.path,
                errors=[{**error, "code": "invalid"} for error in exc.errors],
                **exc.extra,
            )
            return Response(body, status=exc.status_code, content_type=PROBLEM_CONTENT_TYPE)
        return Response(IngestResultSerializer(result.as_dict()).data)


class UsageRecordSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="sku.code")
    region = serializers.CharField(source="region.code")
    reservation = serializers.IntegerField(source="reservation_id", allow_null=True)

    class Meta:
        model = UsageRecord
        fields = [
            "id",
            "sku",
            "region",
            "reservation",
            "hour",
            "gpu_hours",
            "mean_utilization",
            "source",
            "received_at",
        ]
        read_only_fields = fields


class _FromToMixin:
    """Query parameters named ``from`` and ``to`` (Python keywords, hence the renaming)."""

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        fields["to"] = fields.pop("to_")
        return fields


class UsageRecordQuerySerializer(_FromToMixin, serializers.Serializer):
    sku = SkuCodeField(required=False, queryset=GpuSku.objects.all())
    region = RegionCodeField(required=False, queryset=Region.objects.all())
    reservation = serializers.IntegerField(required=False, min_value=1)
    from_ = InstantField(required=False, help_text="Hours at or after this instant.")
    to_ = InstantField(required=False, help_text="Hours before this instant.")


class UsageRecordViewSet(mixins.ListModelMixin, OrganizationGenericViewSet):
    """The organization's hourly usage records, newest hour first."""

    permission_map = {"GET": "usage.view"}
    serializer_class = UsageRecordSerializer
    filter_backends: list = []
    renderer_classes = [JSONRenderer, UsageCsvRenderer]

    @extend_schema(parameters=[UsageRecordQuerySerializer], tags=["usage"])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        if self.is_schema_generation():
            return UsageRecord.all_objects.none()
        query = UsageRecordQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        return selectors.usage_record_list(
            organization=self.organization,
            sku=params.get("sku"),
            region=params.get("region"),
            reservation=params.get("reservation"),
            start=params.get("from"),
            end=params.get("to"),
        )


class UsageAggregateQuerySerializer(_FromToMixin, serializers.Serializer):
    granularity = serializers.ChoiceField(choices=["hour", "day", "month"], default="day")
    group_by = serializers.CharField(
        required=False,
        default="",
        help_text="Comma-separated: sku, region, reservation (none: one figure per bucket).",
    )
    from_ = serializers.DateField(
        required=False,
        help_text="First UTC day. Default: 30 days back (hour: today; month: 12 months back).",
    )
    to_ = serializers.DateField(
        required=False,
        help_text="Day after the last (exclusive). Default: tomorrow (month: "
        "the 1st of next month).",
    )

    def validate_group_by(self, value: str) -> tuple[str, ...]:
        keys = tuple(part.strip() for part in value.split(",") if part.strip())
        for key in keys:
            if key not in selectors.GROUP_KEYS:
                raise serializers.ValidationError("Group by sku, region and/or reservation.")
        return tuple(dict.fromkeys(keys))

    def validate(self, attrs):
        today = timezone.now().astimezone(UTC).date()
        if attrs["granularity"] == "month":
            next_month = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
            attrs.setdefault("to", next_month)
            attrs.setdefault("from", attrs["to"].replace(year=attrs["to"].year - 1))
        else:
            attrs.setdefault("to", today + timedelta(days=1))
            back = 1 if attrs["granularity"] == "hour" else 30
            attrs.setdefault("from", attrs["to"] - timedelta(days=back))
        if attrs["to"] <= attrs["from"]:
            raise serializers.ValidationError({"to": ["Must be after from."]})
        if attrs["granularity"] == "month" and (attrs["from"].day != 1 or attrs["to"].day != 1):
            raise serializers.ValidationError(
                {"from": ["Monthly figures cover whole months: from and to on the 1st."]}
            )
        if attrs["granularity"] == "hour" and attrs["to"] - attrs["from"] > MAX_HOURLY_WINDOW:
            raise serializers.ValidationError(
                {"to": ["Hourly figures cover at most 31 days at a time."]}
            )
        return attrs


class UsageAggregateRowSerializer(serializers.Serializer):
    period = serializers.CharField(help_text="Start of the UTC hour, day or month.")
    sku = serializers.CharField(required=False)
    region = serializers.CharField(required=False)
    reservation = serializers.IntegerField(required=False, allow_null=True)
    gpu_hours = serializers.DecimalField(max_digits=18, decimal_places=4)
    record_count = serializers.IntegerField()


class UsageAggregateView(OrganizationAPIView):
    """GPU-hours per hour (hourly records), day or month (rollups), optionally per SKU,
    region and reservation."""

    permission_map = {"GET": "usage.view"}
    renderer_classes = [JSONRenderer, UsageCsvRenderer]

    @extend_schema(
        parameters=[UsageAggregateQuerySerializer],
        responses=UsageAggregateRowSerializer(many=True),
        tags=["usage"],
    )
    def get(self, request: Request, org_slug: str) -> Response:
        query = UsageAggregateQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        granularity, group_by = params["granularity"], params["group_by"]
        self.csv_header = [
            "period",
            *(column for column in ("sku", "region", "reservation") if column in group_by),
            "gpu_hours",
            "record_count",
        ]
        if granularity == "hour":
            data = self._hourly(params, group_by)
        else:
            # The codes come with the rows (one query): the usage history's hot path.
            data = [
                _aggregate_item(
                    group_by,
                    period=row.bucket.isoformat(),
                    sku=row.sku,
                    region=row.region,
                    reservation=row.reservation_id,
                    gpu_hours=row.gpu_hours,
                    record_count=row.record_count,
                )
                for row in selectors.usage_aggregate_rows(
                    organization=self.organization,
                    start=params["from"],
                    end=params["to"],
                    granularity=granularity,
                    group_by=group_by,
                )
            ]
        return Response(data)

    def _hourly(self, params: dict, group_by: tuple[str, ...]) -> list[dict[str, Any]]:
        rows = selectors.usage_hourly_rows(
            organization=self.organization,
            start=datetime.combine(params["from"], time.min, UTC),
            end=datetime.combine(params["to"], time.min, UTC),
            group_by=group_by,
        )
        sku_codes = dict(GpuSku.objects.values_list("pk", "code")) if "sku" in group_by else {}
        region_codes = (
            dict(Region.objects.values_list("pk", "code")) if "region" in group_by else {}
        )
        return [
            _aggregate_item(
                group_by,
                period=row.bucket.isoformat(),
                sku=sku_codes.get(row.sku_id),
                region=region_codes.get(row.region_id),
                reservation=row.reservation_id,
                gpu_hours=row.gpu_hours,
                record_count=row.record_count,
            )
            for row in rows
        ]


def _aggregate_item(
    group_by: tuple[str, ...],
    *,
    period: str,
    sku: str | None,
    region: str | None,
    reservation: int | None,
    gpu_hours: Decimal,
    record_count: int,
) -> dict[str, Any]:
    """One aggregate row as the API shows it: the grouped columns only."""
    item: dict[str, Any] = {"period": period}
    if "sku" in group_by:
        item["sku"] = sku
    if "region" in group_by:
        item["region"] = region
    if "reservation" in group_by:
        item["reservation"] = reservation
    item["gpu_hours"] = str(gpu_hours)
    item["record_count"] = record_count
    return item
