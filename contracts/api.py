"""REST API of an organization's contracts (term, commitment, rates, burn-down) and monthly
statements (JSON, or CSV with ``Accept: text/csv``)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import django_filters
from django.db.models import Prefetch
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, renderers, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from portal.api.base import OrganizationGenericViewSet

from .models import Contract, ContractDocument, ContractRate
from .selectors.pages import contract_documents, contract_rates_ordered
from .selectors.spend import contract_burn_down, contract_consumed_spend_many
from .selectors.statements import statement_get, statement_list
from .views import parse_month, statement_csv_rows

MONEY = {"max_digits": 16, "decimal_places": 2}


class ContractRateSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="sku.code")
    region = serializers.CharField(
        source="region.code", allow_null=True, default=None, help_text="null: any region."
    )

    class Meta:
        model = ContractRate
        fields = ["sku", "region", "price_per_gpu_hour"]
        read_only_fields = fields


class ContractRateDetailSerializer(ContractRateSerializer):
    list_price_per_gpu_hour = serializers.DecimalField(
        source="sku.list_price_per_gpu_hour",
        max_digits=10,
        decimal_places=4,
        read_only=True,
        help_text="In USD, to show the discount.",
    )

    class Meta(ContractRateSerializer.Meta):
        fields = [*ContractRateSerializer.Meta.fields, "list_price_per_gpu_hour"]
        read_only_fields = fields


class ContractSerializer(serializers.ModelSerializer):
    rates = ContractRateSerializer(many=True, read_only=True)
    consumed_spend = serializers.SerializerMethodField()
    remaining_commitment = serializers.SerializerMethodField()

    class Meta:
        model = Contract
        fields = [
            "id",
            "number",
            "status",
            "term_start",
            "term_end",
            "currency",
            "committed_spend",
            "consumed_spend",
            "remaining_commitment",
            "payment_terms",
            "rates",
            "created_at",
        ]
        read_only_fields = fields

    def _consumed(self, contract: Contract) -> Decimal:
        return self.context["consumed"].get(contract.pk, Decimal("0.00"))

    @extend_schema_field(
        serializers.DecimalField(
            **MONEY,
            help_text="Statement charges (reservations and on-demand usage) inside the term, "
            "to now.",
        )
    )
    def get_consumed_spend(self, contract: Contract) -> str:
        return serializers.DecimalField(**MONEY).to_representation(self._consumed(contract))

    @extend_schema_field(
        serializers.DecimalField(
            **MONEY,
            help_text="Committed minus consumed; negative once spending passes the commitment.",
        )
    )
    def get_remaining_commitment(self, contract: Contract) -> str:
        return serializers.DecimalField(**MONEY).to_representation(
            contract.committed_spend - self._consumed(contract)
        )


class ContractDocumentSerializer(serializers.ModelSerializer):
    download_path = serializers.SerializerMethodField()

    class Meta:
        model = ContractDocument
        fields = ["id", "title", "kind", "content_type", "size", "uploaded_at", "download_path"]
        read_only_fields = fields

    def get_download_path(self, document: ContractDocument) -> str:
        return (
            f"/o/{self.context['organization'].slug}/contracts/{document.contract_id}"
            f"/documents/{document.pk}"
        )


class BurnDownMonthSerializer(serializers.Serializer):
    month = serializers.CharField(help_text="YYYY-MM")
    committed = serializers.DecimalField(**MONEY)
    consumed = serializers.DecimalField(
        **MONEY, allow_null=True, help_text="Cumulative to the month's end; null ahead."
    )
    forecast = serializers.DecimalField(
        **MONEY, allow_null=True, help_text="Cumulative forecast; null for past months."
    )


class BurnDownSerializer(serializers.Serializer):
    currency = serializers.CharField()
    committed = serializers.DecimalField(**MONEY)
    consumed = serializers.DecimalField(**MONEY)
    remaining = serializers.DecimalField(**MONEY)
    consumed_percent = serializers.DecimalField(max_digits=8, decimal_places=1)
    run_rate_days = serializers.IntegerField()
    run_rate_per_day = serializers.DecimalField(**MONEY)
    forecast_at_term_end = serializers.DecimalField(**MONEY)
    projected_underuse = serializers.DecimalField(
        **MONEY, help_text="Committed minus the forecast at term end; negative: overage."
    )
    as_of = serializers.DateTimeField()
    months = BurnDownMonthSerializer(many=True)


class ContractDetailSerializer(ContractSerializer):
    rates = ContractRateDetailSerializer(many=True, read_only=True)
    notes = serializers.CharField(read_only=True)
    documents = serializers.SerializerMethodField()
    burn_down = serializers.SerializerMethodField()

    class Meta(ContractSerializer.Meta):
        fields = [*ContractSerializer.Meta.fields, "notes", "documents", "burn_down"]
        read_only_fields = fields

    @extend_schema_field(ContractDocumentSerializer(many=True))
    def get_documents(self, contract: Contract) -> list:
        return ContractDocumentSerializer(
            contract_documents(contract=contract), many=True, context=self.context
        ).data

    @extend_schema_field(BurnDownSerializer)
    def get_burn_down(self, contract: Contract) -> dict:
        return self.context["burn_down"].as_dict()


class ContractFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Contract.Status.choices)

    class Meta:
        model = Contract
        fields = ["status"]


@extend_schema_view(
    list=extend_schema(tags=["contracts"]),
    retrieve=extend_schema(tags=["contracts"], responses=ContractDetailSerializer),
)
class ContractViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationGenericViewSet):
    """The organization's contracts (owners, admins, billing; its account manager). The detail
    adds notes, documents and the burn-down (committed vs consumed by month, the forecast)."""

    permission_map = {"GET": "billing.view"}
    serializer_class = ContractSerializer
    filterset_class = ContractFilter
    ordering_fields = ["term_start", "term_end", "number"]
    ordering = ["-term_start"]

    def get_queryset(self):
        if self.is_schema_generation():
            return Contract.all_objects.none()
        return Contract.objects.for_organization(self.organization).prefetch_related(
            Prefetch("rates", queryset=contract_rates_ordered())
        )

    def get_serializer_class(self):
        return ContractDetailSerializer if self.action == "retrieve" else ContractSerializer

    def list(self, request: Request, *args, **kwargs) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        consumed = contract_consumed_spend_many(organization=self.organization, contracts=page)
        serializer = ContractSerializer(
            page, many=True, context={**self.get_serializer_context(), "consumed": consumed}
        )
        return self.get_paginated_response(serializer.data)

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        contract = self.get_object()
        burn = contract_burn_down(contract=contract)
        context = {
            **self.get_serializer_context(),
            "consumed": {contract.pk: burn.consumed},
            "burn_down": burn,
            "organization": self.organization,
        }
        return Response(ContractDetailSerializer(contract, context=context).data)


# --- Statements ----------------------------------------------------------------------------


class CsvRenderer(renderers.BaseRenderer):
    """A statement's lines and totals as CSV (the same columns as the page's CSV)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code >= 400:
            return renderers.JSONRenderer().render(data)
        buffer = io.StringIO()
        csv.writer(buffer).writerows(data)
        return buffer.getvalue().encode("utf-8")


class StatementSummarySerializer(serializers.Serializer):
    month = serializers.CharField(source="slug", help_text="YYYY-MM")
    status = serializers.SerializerMethodField()
    total = serializers.DecimalField(
        **MONEY, allow_null=True, help_text="null while the month is open."
    )
    issued_at = serializers.DateTimeField(source="statement.issued_at", allow_null=True)

    def get_status(self, summary) -> str:
        return "issued" if summary.statement is not None else "open"


class StatementLineSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="reservation, usage, covered or adjustment")
    adjusts = serializers.CharField(help_text="For an adjustment: the kind it corrects.")
    month = serializers.DateField(source="period", format="%Y-%m")
    sku = serializers.CharField(source="sku.code")
    region = serializers.CharField(source="region.code")
    reservation_id = serializers.IntegerField(allow_null=True)
    gpu_hours = serializers.DecimalField(max_digits=18, decimal_places=6)
    rate_per_gpu_hour = serializers.DecimalField(max_digits=10, decimal_places=4)
    price_source = serializers.CharField()
    contract_id = serializers.IntegerField(allow_null=True)
    amount = serializers.DecimalField(**MONEY)


class StatementSerializer(serializers.Serializer):
    month = serializers.CharField(source="slug", help_text="YYYY-MM")
    status = serializers.SerializerMethodField()
    currency = serializers.CharField()
    reservation_total = serializers.DecimalField(**MONEY)
    usage_total = serializers.DecimalField(**MONEY)
    adjustment_total = serializers.DecimalField(**MONEY)
    total = serializers.DecimalField(**MONEY)
    as_of = serializers.DateTimeField(
        help_text="When issued, or the time of an open month's figures."
    )
    lines = StatementLineSerializer(source="rows", many=True)

    def get_status(self, statement) -> str:
        return "issued" if statement.is_issued else "open"


@extend_schema_view(
    list=extend_schema(tags=["statements"], responses=StatementSummarySerializer(many=True)),
    retrieve=extend_schema(
        tags=["statements"],
        responses={
            (200, "application/json"): StatementSerializer,
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="The statement's lines and totals as CSV."
            ),
        },
    ),
)
class StatementViewSet(OrganizationGenericViewSet):
    """Monthly statements: issued months (frozen) and the open ones (figures to now). A
    month's detail is JSON, or CSV with ``Accept: text/csv``."""

    permission_map = {"GET": "billing.view"}
    serializer_class = StatementSerializer
    lookup_field = "month"
    lookup_value_regex = r"[0-9]{4}-[0-9]{1,2}|[0-9]+"
    filter_backends: list = []
    renderer_classes = [renderers.JSONRenderer, CsvRenderer]

    def get_renderers(self):
        if getattr(self, "action", None) == "retrieve":
            return super().get_renderers()
        return [renderers.JSONRenderer()]

    def get_queryset(self):
        return Contract.all_objects.none()  # statements are read through selectors

    def list(self, request: Request, org_slug: str) -> Response:
        summaries = statement_list(organization=self.organization)
        page = self.paginate_queryset(summaries)
        return self.get_paginated_response(StatementSummarySerializer(page, many=True).data)

    def retrieve(self, request: Request, org_slug: str, month: str) -> Response:
        statement = statement_get(organization=self.organization, month=parse_month(month))
        if statement is None:
            raise Http404("That month has not begun.")
        if request.accepted_renderer.format == "csv":
            response = Response(list(statement_csv_rows(statement)))
            response["Content-Disposition"] = (
                f'attachment; filename="statement-{self.organization.slug}-{statement.slug}.csv"'
            )
            return response
        return Response(StatementSerializer(statement).data)
