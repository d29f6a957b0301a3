"""``time_tag`` writes exactly what the ``date`` filter pair it replaces writes, in any time
zone: across daylight saving changes (including the wall times that occur twice or never),
half-hour zones, naive values and the far past."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.template import engines
from django.utils import timezone

PAIR = engines["django"].from_string(
    """<time datetime="{{ x|date:'c' }}">{{ x|date:"Y-m-d H:i T" }}</time>"""
)
TAG = engines["django"].from_string("{% load instants %}{{ x|time_tag }}")

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe"]


def _instants():
    start = datetime(2026, 3, 8, 5, 30, tzinfo=UTC)  # New York springs forward at 07:00 UTC
    values = [start + timedelta(minutes=15 * n) for n in range(16)]
    fall = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # New York's 01:00-02:00 occurs twice
    values += [fall + timedelta(minutes=20 * n) for n in range(9)]
    values += [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # Berlin's 02:00-03:00 twice
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        datetime(2026, 4, 4, 14, 45, tzinfo=UTC),  # Lord Howe: half an hour back
        datetime(2026, 4, 4, 15, 15, tzinfo=UTC),
        datetime(2026, 11, 25, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(987, 6, 5, 4, 3, 2, tzinfo=UTC),
    ]
    return values


@pytest.mark.parametrize("zone", ZONES)
def test_time_tag_writes_what_the_date_filters_write(zone):
    with timezone.override(ZoneInfo(zone)):
        for value in _instants():
            context = {"x": value}
            assert TAG.render(context) == PAIR.render(context), value


def test_naive_values_and_empty_ones(settings):
    with timezone.override(ZoneInfo("America/New_York")):
        naive = datetime(2026, 11, 1, 1, 30)
        assert TAG.render({"x": naive}) == PAIR.render({"x": naive})
        assert TAG.render({"x": None}) == TAG.render({}) == ""


def test_a_time_that_occurs_twice_shows_no_zone_as_before():
    with timezone.override(ZoneInfo("America/New_York")):
        html = TAG.render({"x": datetime(2026, 11, 1, 5, 30, tzinfo=UTC)})
    assert html == '<time datetime="2026-11-01T01:30:00-04:00">2026-11-01 01:30 </time>'


def test_ordinary_instants_do_not_go_through_the_date_filter(monkeypatch):
    from quotas.templatetags import instants

    def refuse(value, arg):
        raise AssertionError("the date filter was called")

    monkeypatch.setattr(instants, "date", refuse)
    with timezone.override(ZoneInfo("Asia/Kolkata")):
        html = TAG.render({"x": datetime(2026, 11, 25, 22, 5, 9, tzinfo=UTC)})
    assert html == '<time datetime="2026-11-26T03:35:09+05:30">2026-11-26 03:35 IST</time>'
