"""Page-number pagination; ordering is made total by the filters (see filters.py)."""

from __future__ import annotations

from collections.abc import Iterator

from django.core.paginator import Page, Paginator
from rest_framework.pagination import PageNumberPagination


class PortalPage(Page):
    """Django's page, iterated over its list (Django's goes through ``__getitem__`` once per
    row: DRF's paginator takes ``list(page)``)."""

    def __iter__(self) -> Iterator:
        if not isinstance(self.object_list, list):
            self.object_list = list(self.object_list)
        return iter(self.object_list)


class PortalPaginator(Paginator):
    """Django's paginator. A list that reads a page together with the number of rows in all
    (``window(offset=, limit=)``, such as the request list's rows) is read once for both: one
    statement, one snapshot, where Django asks for the count and then for the page."""

    def page(self, number) -> Page:
        read = getattr(self.object_list, "window", None)
        first = _page_number(number)
        if read is None or self.orphans or first is None or "count" in self.__dict__:
            return super().page(number)  # also says what is wrong with a bad number
        bottom = (first - 1) * self.per_page
        rows, self.count = read(offset=bottom, limit=self.per_page)  # count: a cached_property
        # With no orphans Django's page is object_list[bottom:min(bottom + per_page, count)]:
        # the window's rows. A window past the end is refused here as Django refuses it.
        return self._get_page(rows, self.validate_number(first), self)

    def _get_page(self, *args, **kwargs) -> Page:
        return PortalPage(*args, **kwargs)


def _page_number(number) -> int | None:
    """The page number as ``Paginator.validate_number`` reads it, None where it refuses it
    whatever the count (not a whole number, below 1)."""
    try:
        if isinstance(number, float) and not number.is_integer():
            return None
        number = int(number)
    except (TypeError, ValueError):
        return None
    return number if number >= 1 else None


class PortalPagination(PageNumberPagination):
    django_paginator_class = PortalPaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
