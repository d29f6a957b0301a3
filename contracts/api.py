"""REST API of an organization's contracts: term, commitment and what is left of it, rates."""

from __future__ import annotations

from decimal import Decimal

import django_filters
from django.db.models import F, Prefetch
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers

from portal.api.base import OrganizationGenericViewSet

from .models import Contract, ContractRate
from .selectors import contract_consumed_spend, contract_remaining_commitment


class ContractRateSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="sku.code")
    region = serializers.CharField(
        source="region.code", allow_null=True, default=None, help_text="null: any region."
    )

    class Meta:
        model = ContractRate
        fields = ["sku", "region", "price_per_gpu_hour"]
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

    @extend_schema_field(serializers.DecimalField(max_digits=14, decimal_places=2))
    def get_consumed_spend(self, contract: Contract) -> Decimal:
        return serializers.DecimalField(max_digits=14, decimal_places=2).to_representation(
            contract_consumed_spend(contract=contract)
        )

    @extend_schema_field(
        serializers.DecimalField(
            max_digits=14,
            decimal_places=2,
            help_text="Committed minus consumed; negative once spending passes the commitment.",
        )
    )
    def get_remaining_commitment(self, contract: Contract) -> Decimal:
        return serializers.DecimalField(max_digits=14, decimal_places=2).to_representation(
            contract_remaining_commitment(contract=contract)
        )


class ContractFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Contract.Status.choices)

    class Meta:
        model = Contract
        fields = ["status"]


@extend_schema_view(
    list=extend_schema(tags=["contracts"]), retrieve=extend_schema(tags=["contracts"])
)
class ContractViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationGenericViewSet):
    """The organization's contracts (owners, admins, billing; its account manager)."""

    permission_map = {"GET": "billing.view"}
    serializer_class = ContractSerializer
    filterset_class = ContractFilter
    ordering_fields = ["term_start", "term_end", "number"]
    ordering = ["-term_start"]

    def get_queryset(self):
        if self.is_schema_generation():
            return Contract.all_objects.none()
        return Contract.objects.for_organization(self.organization).prefetch_related(
            Prefetch(
                "rates",
                # Any-region rates first, then the region-specific ones that override them.
                queryset=ContractRate.objects.select_related("sku", "region").order_by(
                    "sku__code", F("region__code").asc(nulls_first=True), "pk"
                ),
            )
        )
