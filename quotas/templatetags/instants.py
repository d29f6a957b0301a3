"""``{{ instant|time_tag }}``: an instant as the pages show it, in the current time zone:
``<time datetime="{{ x|date:'c' }}">{{ x|date:"Y-m-d H:i T" }}</time>``, written directly.
The ``date`` filter looks its format up and walks it per value (with the language of the
request each time): on the dashboard its ninety-odd calls were a fifth of the rendering.
What the direct form does not cover (a naive value, a zone without a name, a wall time that
occurs twice or never at a change of daylight saving time, which ``date`` shows without a
zone) goes through the ``date`` filter itself; ``tests/quotas/test_time_tag.py`` holds both
equal."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.template.defaultfilters import date
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.filter(expects_localtime=True)
def time_tag(value: datetime | None) -> SafeString | str:
    if not isinstance(value, datetime):
        return ""
    name = value.tzname()
    if name is None or value.utcoffset() != value.replace(fold=not value.fold).utcoffset():
        return format_html(
            '<time datetime="{}">{}</time>', date(value, "c"), date(value, "Y-m-d H:i T")
        )
    shown = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d} {name}"
    )
    return format_html('<time datetime="{}">{}</time>', value.isoformat(), shown)
