"""Serializer pieces shared by the request, reservation and staff APIs."""

from __future__ import annotations

from datetime import UTC, datetime

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


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class InstantField(serializers.DateTimeField):
    """An instant in ISO 8601, stored in UTC, within [2000, 2200): windows far outside are a
    typing mistake, and would overflow the date arithmetic of availability and pricing."""

    def to_internal_value(self, value):
        instant = super().to_internal_value(value)
        if not EARLIEST <= instant < LATEST:
            raise serializers.ValidationError("Give a time between the years 2000 and 2199.")
        return instant
