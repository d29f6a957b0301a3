"""Filter backends and filters: django-filter, an ordering that always ends with the primary
key, and instants normalised to UTC.

Without a unique last key, rows with equal sort values may swap between two page queries and
a client paging through a list would miss or repeat rows.
"""

from __future__ import annotations

from datetime import UTC

import django_filters
import django_filters.fields
from django.core.exceptions import ValidationError
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.filters import OrderingFilter


class QueryFilterBackend(DjangoFilterBackend):
    """django-filter's backend, skipped when the query names none of the view's filters.

    Building a FilterSet deep-copies every filter and validates a form (~2 ms per request) to
    change nothing when no filter is asked for. A filterset with a required filter always
    runs (its absence is a 400). A query key that merely starts with a filter's name (a range
    filter's ``_after``/``_min`` parts) runs it too.
    """

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None and not _names_a_filter(request, filterset_class):
            return queryset
        return super().filter_queryset(request, queryset, view)


def _names_a_filter(request, filterset_class) -> bool:
    filters = filterset_class.base_filters
    if any(f.extra.get("required") for f in filters.values()):
        return True
    return any(key.startswith(name) for key in request.query_params for name in filters)


class StableOrderingFilter(OrderingFilter):
    def get_ordering(self, request, queryset, view) -> list[str]:
        ordering = list(
            super().get_ordering(request, queryset, view)
            or queryset.query.order_by
            or queryset.model._meta.ordering
            or []
        )
        names = {field.lstrip("-") for field in ordering}
        if not names & {"pk", "id"}:
            last_descending = bool(ordering) and ordering[-1].startswith("-")
            ordering.append("-pk" if last_descending else "pk")
        return ordering

    def filter_queryset(self, request, queryset, view):
        # Applied even when the view declares no ordering fields: the pk tie-break matters.
        ordering = self.get_ordering(request, queryset, view)
        return queryset.order_by(*ordering)


class UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 instant, converted to UTC.

    PostgreSQL accepts offsets up to ±15:59 only; Python up to ±23:59. Converting first keeps
    a valid instant from failing in the database, and an instant that does not fit once in UTC
    (year 9999 with a negative offset) is a validation error, not a server error.
    """

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValidationError("This date is out of range.", code="overflow") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField
