"""REST API of the catalog: regions and GPU SKUs, readable by any authenticated caller."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers

from portal.api.base import PortalReadOnlyViewSet
from quotas.models import GpuSku, Region


class RegionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Region
        fields = ["code", "name", "location", "active"]
        read_only_fields = fields


class GpuSkuSerializer(serializers.ModelSerializer):
    class Meta:
        model = GpuSku
        fields = [
            "code",
            "name",
            "memory_gb",
            "interconnect",
            "gpus_per_node",
            "sold_in_whole_nodes",
            "list_price_per_gpu_hour",
            "active",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "list_price_per_gpu_hour": {"help_text": "USD per GPU-hour, a decimal string."}
        }


@extend_schema_view(list=extend_schema(tags=["catalog"]), retrieve=extend_schema(tags=["catalog"]))
class RegionViewSet(PortalReadOnlyViewSet):
    """Data centres."""

    queryset = Region.objects.all()
    serializer_class = RegionSerializer
    lookup_field = "code"
    filterset_fields = ["active"]
    ordering_fields = ["code", "name"]
    ordering = ["code"]


@extend_schema_view(list=extend_schema(tags=["catalog"]), retrieve=extend_schema(tags=["catalog"]))
class GpuSkuViewSet(PortalReadOnlyViewSet):
    """GPU types for sale, with list prices."""

    queryset = GpuSku.objects.all()
    serializer_class = GpuSkuSerializer
    lookup_field = "code"
    filterset_fields = {"active": ["exact"], "memory_gb": ["exact", "gte", "lte"]}
    ordering_fields = ["code", "name", "memory_gb", "list_price_per_gpu_hour"]
    ordering = ["name"]
