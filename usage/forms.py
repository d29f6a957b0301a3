"""The usage history filter (a GET form: the query string is the state of the page)."""

from __future__ import annotations

from datetime import date

from django import forms

MAX_DAYS = 3 * 366


def default_window(today: date) -> tuple[date, date]:
    """The last twelve months, this one included: from the 1st eleven months back to today."""
    year, month = today.year, today.month - 11
    if month < 1:
        year, month = year - 1, month + 12
    return date(year, month, 1), today


class UsageHistoryForm(forms.Form):
    start = forms.DateField(label="From (UTC day)", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(
        label="To (UTC day, included)", widget=forms.DateInput(attrs={"type": "date"})
    )
    granularity = forms.ChoiceField(
        label="By", choices=[("day", "Day"), ("week", "Week"), ("month", "Month")]
    )
    group_by = forms.ChoiceField(
        label="Split by", choices=[("sku", "GPU type"), ("region", "Region")]
    )

    def __init__(self, data=None, *, today: date, **kwargs):
        start, end = default_window(today)
        initial = {
            "start": start,
            "end": end,
            "granularity": "month",
            "group_by": "sku",
        }
        bound = {**{k: v.isoformat() if isinstance(v, date) else v for k, v in initial.items()}}
        bound.update({k: v for k, v in (data or {}).items() if k in self.base_fields and v})
        kwargs.setdefault("label_suffix", "")
        super().__init__(bound, **kwargs)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if end < start:
                self.add_error("end", "The last day must not be before the first.")
            elif (end - start).days > MAX_DAYS:
                self.add_error("start", "Show at most three years at a time.")
        return cleaned


MAX_MONTHS = 36


def parse_month(value: str) -> date:
    """``YYYY-MM`` to the month's first day."""
    year, month = value.split("-")
    return date(int(year), int(month), 1)


class MonthField(forms.CharField):
    widget = forms.TextInput(attrs={"type": "month", "pattern": r"\d{4}-\d{2}"})

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return None
        try:
            return parse_month(value)
        except ValueError:
            raise forms.ValidationError("Enter a month as YYYY-MM.") from None

    def prepare_value(self, value):
        return value.strftime("%Y-%m") if isinstance(value, date) else value


class FleetUsageForm(forms.Form):
    """The staff fleet-usage filter: whole UTC months, both included."""

    start = MonthField(label="From (UTC month)")
    end = MonthField(label="To (UTC month, included)")

    def __init__(self, data=None, *, today: date, **kwargs):
        start, _ = default_window(today)
        bound = {"start": start.strftime("%Y-%m"), "end": today.strftime("%Y-%m")}
        bound.update({k: v for k, v in (data or {}).items() if k in self.base_fields and v})
        kwargs.setdefault("label_suffix", "")
        super().__init__(bound, **kwargs)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            months = (end.year - start.year) * 12 + end.month - start.month + 1
            if months < 1:
                self.add_error("end", "The last month must not be before the first.")
            elif months > MAX_MONTHS:
                self.add_error("start", "Show at most 36 months at a time.")
        return cleaned
