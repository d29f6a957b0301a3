"""Serializer pieces shared by the request, reservation and staff APIs."""

from __future__ import annotations

from rest_framework import serializers

from quotas.models import CapacityPool, GpuSku, Region


class SkuCodeField(serializers.SlugRelatedField):
    def __init__(self, **kwargs):
        kwargs.setdefault("slug_field", "code")
        if not kwargs.get("read_only"):
            kwargs.setdefault("queryset", GpuSku.objects.filter(active=True))
        super().__init__(**kwargs)


class RegionCodeField(serializers.SlugRelatedField):
    def __init__(self, **kwargs):
        kwargs.setdefault("slug_field", "code")
        if not kwargs.get("read_only"):
            kwargs.setdefault("queryset", Region.objects.filter(active=True))
        super().__init__(**kwargs)


class PoolRefSerializer(serializers.Serializer):
    """A capacity pool named by its SKU and region."""

    sku = serializers.CharField(source="sku.code")
    region = serializers.CharField(source="region.code")


def pool_for(*, sku: GpuSku, region: Region) -> CapacityPool:
    pool = (
        CapacityPool.objects.filter(sku=sku, region=region, active=True)
        .select_related("sku", "region")
        .first()
    )
    if pool is None:
        raise serializers.ValidationError(
            {"region": [f"{sku.name} is not offered in {region.code}."]}
        )
    return pool
