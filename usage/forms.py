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
