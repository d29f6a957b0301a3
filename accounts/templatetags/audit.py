"""Rendering of audit event changes for people: ``old → new`` rather than Python lists."""

from django import template

register = template.Library()


@register.filter
def audit_value(value) -> str:
    if isinstance(value, list | tuple) and len(value) == 2:
        old, new = value
        return f"{_plain(old)} → {_plain(new)}"
    return _plain(value)


def _plain(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    return str(value)
