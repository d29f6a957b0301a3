"""Serializer pieces shared by the request, reservation and staff APIs."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject
from rest_framework.settings import api_settings

from quotas.models import CapacityPool, CapacityRequest, GpuSku, Region


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


class OfferSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=CapacityRequest.OfferKind.choices, source="offer_kind")
    sku = serializers.CharField(source="offer_pool.sku.code")
    region = serializers.CharField(source="offer_pool.region.code")
    gpu_count = serializers.IntegerField(source="offer_gpu_count")
    starts_at = serializers.DateTimeField(source="offer_starts_at")
    ends_at = serializers.DateTimeField(source="offer_ends_at")
    expires_at = serializers.DateTimeField(source="offer_expires_at")
    note = serializers.CharField(source="offer_note")


class FrozenQuoteSerializer(serializers.Serializer):
    currency = serializers.CharField(source="quote_currency")
    rate_per_gpu_hour = serializers.DecimalField(
        source="quote_rate_per_gpu_hour", max_digits=10, decimal_places=4
    )
    gpu_hours = serializers.DecimalField(source="quote_gpu_hours", max_digits=16, decimal_places=4)
    total = serializers.DecimalField(source="quote_total", max_digits=16, decimal_places=2)
    source = serializers.CharField(source="quote_source")


def offer_representation(**values) -> dict:
    """``OfferSerializer``'s output from its values by field name (instants may come as
    ISO text already: DRF's DateTimeField passes text through)."""
    plan = representation_plan("offer", OfferSerializer)
    return {name: represent(values[name]) for name, _, represent in plan}


def quote_representation(**values) -> dict:
    """``FrozenQuoteSerializer``'s output from its values by field name."""
    plan = representation_plan("quote", FrozenQuoteSerializer)
    return {name: represent(values[name]) for name, _, represent in plan}


# (field name, its JSON-encoded key, the field's representation of a value: None stays None)
RepresentationPlan = tuple[tuple[str, str, Callable[[object], object]], ...]
# The nested serializers' fields are built once, not once per row (DRF deep-copies a
# serializer's fields each time one is built); they keep no per-request state.
_PLANS_BY_NAME: dict[str, RepresentationPlan] = {}


def representation_plan(
    name: str, serializer_class: type[serializers.Serializer]
) -> RepresentationPlan:
    plan = _PLANS_BY_NAME.get(name)
    if plan is None:
        fields = serializer_class().fields
        plan = _PLANS_BY_NAME[name] = tuple(
            (field_name, json.dumps(field_name), _representer(field))
            for field_name, field in fields.items()
        )
    return plan


def _representer(field: serializers.Field) -> Callable[[object], object]:
    """The field's representation as a serializer gives it (None stays None)."""
    if (
        type(field) is serializers.DecimalField
        and getattr(field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING)
        and not field.localize
        and not field.normalize_output
        and field.decimal_places is not None
    ):
        places, max_digits = -field.decimal_places, field.max_digits

        def decimal_text(value):
            # A numeric column of the field's scale gives Decimals with exactly its places:
            # DRF would quantize them to themselves (and copy a decimal context each time).
            if type(value) is Decimal:
                _, digits, exponent = value.as_tuple()
                if exponent == places and (max_digits is None or len(digits) <= max_digits):
                    return format(value, "f")
            return None if value is None else field.to_representation(value)

        return decimal_text
    return lambda value: None if value is None else field.to_representation(value)


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


_PLANS: dict[type, list] = {}


class FastRepresentationMixin:
    """``to_representation`` for pages of many rows, with DRF's output exactly.

    DRF resolves every field of every row through its generic machinery (source traversal with
    try/except, ``PKOnlyObject`` wrappers, a queryset per row for a many-to-many field). Here the
    plan is worked out once per serializer: a method field calls its method, a foreign key's
    primary key is read from its ``_id`` column, a dotted source is followed with getattr and
    converted by the field's own ``to_representation``. Whatever does not fit (a ``*`` source,
    a callable, a relation met as None on the way) goes through DRF's own path. A many-to-many
    field reads ``related_codes[field name][row pk]`` when the list serializer filled it.
    """

    related_codes: dict[str, dict[int, list[str]]] | None = None

    @property
    def _plan(self) -> list[tuple[str, str, object, serializers.Field]]:
        """Built from the first instance's fields, then kept for the class: building a
        ModelSerializer's fields (and deep-copying them) per request cost as much as the rows.
        The fields used here keep no per-request state (a method field is looked up on self)."""
        plan = _PLANS.get(type(self))
        if plan is None:
            plan = _PLANS[type(self)] = self._plan_build()
        return plan

    def _plan_build(self) -> list[tuple[str, str, object, serializers.Field]]:
        model = getattr(getattr(self, "Meta", None), "model", None)
        plan = []
        for field in self._readable_fields:
            name = field.field_name
            if isinstance(field, serializers.SerializerMethodField):
                plan.append((name, "method", field.method_name, field))
            elif isinstance(field, serializers.ManyRelatedField):
                plan.append((name, "many", None, field))
            elif field.source == "*" or not field.source_attrs:
                plan.append((name, "drf", None, field))
            elif (
                isinstance(field, serializers.PrimaryKeyRelatedField)
                and field.pk_field is None
                and model is not None
                and len(field.source_attrs) == 1
            ):
                plan.append((name, "pk", model._meta.get_field(field.source).attname, field))
            elif (
                model is not None
                and callable(getattr(model, field.source_attrs[0], None))
                and not isinstance(getattr(model, field.source_attrs[0], None), property)
            ):
                plan.append((name, "drf", None, field))
            elif _is_plain_iso_datetime(field) and len(field.source_attrs) == 1:
                plan.append((name, "datetime", field.source, field))
            else:
                plan.append((name, "attrs", tuple(field.source_attrs), field))
        return plan

    def to_representation(self, instance):
        if isinstance(instance, Mapping):
            return super().to_representation(instance)
        ret = {}
        zone = timezone.get_current_timezone() if settings.USE_TZ else None
        for name, kind, how, field in self._plan:
            if kind == "datetime":
                value = getattr(instance, how)
                if isinstance(value, datetime) and zone is not None and timezone.is_aware(value):
                    # DRF's DateTimeField.to_representation, the zone looked up once per row.
                    text = value.astimezone(zone).isoformat()
                    ret[name] = text[:-6] + "Z" if text.endswith("+00:00") else text
                else:
                    ret[name] = None if value is None else field.to_representation(value)
                continue
            if kind == "method":
                ret[name] = getattr(self, how)(instance)
                continue
            if kind == "pk":
                ret[name] = getattr(instance, how)
                continue
            if kind == "many":
                codes = (self.related_codes or {}).get(name)
                if codes is not None:
                    ret[name] = list(codes.get(instance.pk, ()))
                    continue
            elif kind == "attrs":
                found, value = _follow(instance, how)
                if found:
                    ret[name] = None if value is None else field.to_representation(value)
                    continue
            # DRF's own path: a relation met as None on the way (with the field's default,
            # null and skip rules), a "*" source, a callable, a many-to-many not filled in.
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            check = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            ret[name] = None if check is None else field.to_representation(attribute)
        return ret


_MISSING = object()


def _follow(instance, attrs: tuple[str, ...]) -> tuple[bool, object]:
    """(True, value) at the end of the path (None included); (False, None) when a relation on
    the way is None or missing, which DRF's own path resolves (default, null or skip)."""
    value = instance
    for attr in attrs:
        if value is None:
            return False, None
        value = getattr(value, attr, _MISSING)
        if value is _MISSING:
            return False, None
    return True, value


def _is_plain_iso_datetime(field: serializers.Field) -> bool:
    """A DateTimeField as DRF builds it for a model column: ISO 8601 in the current zone."""
    return (
        type(field) is serializers.DateTimeField
        and not hasattr(field, "timezone")
        and getattr(field, "format", api_settings.DATETIME_FORMAT) == ISO_8601
    )
