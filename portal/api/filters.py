"""Filter backends: django-filter, and an ordering that always ends with the primary key.

Without a unique last key, rows with equal sort values may swap between two page queries and
a client paging through a list would miss or repeat rows.
"""

from __future__ import annotations

from rest_framework.filters import OrderingFilter


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
