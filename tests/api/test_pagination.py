"""PortalPaginator reads a windowed list's page and count together and answers exactly as
Django's Paginator does on the same rows."""

import pytest
from django.core.paginator import InvalidPage, Paginator

from portal.api.pagination import PortalPaginator


class WindowedRows:
    """A list that reads a page with its count, recording each read."""

    ordered = True

    def __init__(self, rows):
        self.rows = rows
        self.reads = []

    def count(self):
        self.reads.append("count")
        return len(self.rows)

    def __getitem__(self, window):
        self.reads.append(("slice", window.start, window.stop))
        return self.rows[window]

    def window(self, *, offset, limit):
        self.reads.append(("window", offset, limit))
        return self.rows[offset : offset + limit], len(self.rows)


def _outcome(paginator, number):
    try:
        page = paginator.page(number)
    except InvalidPage as exc:
        return type(exc), str(exc)
    return list(page), page.number, paginator.count, page.has_next(), page.has_previous()


@pytest.mark.parametrize("size", [0, 1, 4, 5, 6, 11])
@pytest.mark.parametrize("number", [1, 2, 3, "2", 2.0, 0, -1, 1.5, "x", None, 99])
def test_pages_are_django_pages(size, number):
    rows = list(range(size))
    windowed = WindowedRows(rows)

    assert _outcome(PortalPaginator(windowed, 5), number) == _outcome(Paginator(rows, 5), number)


def test_a_page_in_range_is_one_read():
    windowed = WindowedRows(list(range(12)))

    page = PortalPaginator(windowed, 5).page(3)

    assert list(page) == [10, 11]
    assert windowed.reads == [("window", 10, 5)]


def test_orphans_and_lists_without_windows_page_as_django_does():
    windowed = WindowedRows(list(range(11)))
    assert list(PortalPaginator(windowed, 5, orphans=1).page(2)) == list(range(5, 11))
    assert "count" in windowed.reads  # Django's own way: count, then the slice
    assert list(PortalPaginator(list(range(11)), 5).page(3)) == [10]
