"""Browser forms for capacity requests and reservations.

Times are typed in the organization's time zone: the views activate it for the request, so
Django's datetime fields read and show the values there and store aware UTC datetimes.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.utils import timezone

from quotas.models import CapacityRequest, GpuSku, Region
from quotas.workflow import RequestState

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format=DATETIME_LOCAL, **kwargs)


class Form(forms.Form):
    """Labels without Django's trailing colon, as on every other page of the portal."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


def window_too_far(form: forms.Form, starts_at, ends_at) -> bool:
    """Refuse, before any availability or price is computed, a window past the horizon: the
    services refuse it too, and converting such a time to UTC can overflow."""
    from quotas.services.requests import START_HORIZON

    now = timezone.now()
    too_far = False
    if starts_at and starts_at > now + START_HORIZON:
        form.add_error(
            "starts_at", f"The start must be within {START_HORIZON.days // 365} years from now."
        )
        too_far = True
    max_days = settings.QUOTAS_MAX_DURATION_DAYS
    # Subtract, never add: adding days to a time near the end of year 9999 overflows.
    if ends_at and ends_at - max(starts_at or now, now) > timedelta(days=max_days):
        form.add_error("ends_at", f"A reservation lasts at most {max_days} days.")
        too_far = True
    return too_far


class CapacityRequestForm(Form):
    kind = forms.ChoiceField(
        label="What do you need?",
        choices=CapacityRequest.Kind.choices,
        initial=CapacityRequest.Kind.RESERVATION,
        widget=forms.RadioSelect,
    )
    sku = forms.ModelChoiceField(
        label="GPU type", queryset=GpuSku.objects.none(), empty_label="Choose a GPU type"
    )
    region = forms.ModelChoiceField(
        label="Region", queryset=Region.objects.none(), empty_label="Choose a region"
    )
    gpu_count = forms.IntegerField(
        label="GPUs",
        min_value=1,
        required=False,
        help_text="Node-based GPU types come in whole nodes (for example 8, 16, 24).",
    )
    starts_at = forms.DateTimeField(
        label="Start", required=False, widget=LocalDateTimeInput(), input_formats=[DATETIME_LOCAL]
    )
    ends_at = forms.DateTimeField(
        label="End (not included)",
        required=False,
        widget=LocalDateTimeInput(),
        input_formats=[DATETIME_LOCAL],
    )
    on_demand_limit = forms.IntegerField(
        label="New on-demand limit (GPUs running at once)", min_value=0, required=False
    )
    justification = forms.CharField(
        label="Why you need it",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Helps your account manager decide fast: project, workload, deadline.",
    )
    alternative_skus = forms.ModelMultipleChoiceField(
        label="Other GPU types you would accept",
        queryset=GpuSku.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    alternative_regions = forms.ModelMultipleChoiceField(
        label="Other regions you would accept",
        queryset=Region.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    waitlist_if_unavailable = forms.BooleanField(
        label="Join the waitlist if no capacity fits", required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        skus = GpuSku.objects.filter(active=True).order_by("name")
        regions = Region.objects.filter(active=True).order_by("code")
        self.fields["sku"].queryset = skus
        self.fields["alternative_skus"].queryset = skus
        self.fields["region"].queryset = regions
        self.fields["alternative_regions"].queryset = regions

    def clean(self):
        data = super().clean()
        if data.get("kind") == CapacityRequest.Kind.RESERVATION:
            for name, message in (
                ("gpu_count", "Say how many GPUs you need."),
                ("starts_at", "Choose when the reservation starts."),
                ("ends_at", "Choose when the reservation ends."),
            ):
                if data.get(name) is None and name not in self.errors:
                    self.add_error(name, message)
            starts_at, ends_at = data.get("starts_at"), data.get("ends_at")
            window_too_far(self, starts_at, ends_at)
            if starts_at and ends_at and ends_at <= starts_at and "ends_at" not in self.errors:
                self.add_error("ends_at", "The end must be after the start.")
        elif (
            data.get("kind") == CapacityRequest.Kind.QUOTA_INCREASE
            and data.get("on_demand_limit") is None
            and "on_demand_limit" not in self.errors
        ):
            self.add_error("on_demand_limit", "Say what the new on-demand limit should be.")
        if data.get("sku") and data.get("sku") in (data.get("alternative_skus") or []):
            self.add_error(
                "alternative_skus", "The GPU type asked for is already the first choice."
            )
        return data

    @property
    def is_reservation(self) -> bool:
        return self.data.get("kind", CapacityRequest.Kind.RESERVATION) == (
            CapacityRequest.Kind.RESERVATION
        )


class RequestFilterForm(Form):
    state = forms.ChoiceField(
        label="State", required=False, choices=[("", "Any state"), *RequestState.choices]
    )
    sku = forms.ModelChoiceField(
        label="GPU type", queryset=GpuSku.objects.none(), required=False, empty_label="Any GPU type"
    )
    region = forms.ModelChoiceField(
        label="Region", queryset=Region.objects.none(), required=False, empty_label="Any region"
    )
    q = forms.CharField(label="Search", required=False, max_length=100)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sku"].queryset = GpuSku.objects.order_by("name")
        self.fields["region"].queryset = Region.objects.order_by("code")


class ReasonForm(Form):
    reason = forms.CharField(
        label="Reason", widget=forms.Textarea(attrs={"rows": 3}), max_length=2000
    )


class OptionalReasonForm(Form):
    reason = forms.CharField(
        label="Reason (optional)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
    )


class CommentForm(Form):
    body = forms.CharField(
        label="Add a comment", widget=forms.Textarea(attrs={"rows": 3}), max_length=5000
    )


class CounterOfferForm(Form):
    region = forms.ModelChoiceField(label="Region", queryset=Region.objects.none())
    sku = forms.ModelChoiceField(label="GPU type", queryset=GpuSku.objects.none())
    gpu_count = forms.IntegerField(label="GPUs", min_value=1)
    starts_at = forms.DateTimeField(
        label="Start", widget=LocalDateTimeInput(), input_formats=[DATETIME_LOCAL]
    )
    ends_at = forms.DateTimeField(
        label="End (not included)", widget=LocalDateTimeInput(), input_formats=[DATETIME_LOCAL]
    )
    note = forms.CharField(
        label="Note to the customer", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sku"].queryset = GpuSku.objects.filter(active=True).order_by("name")
        self.fields["region"].queryset = Region.objects.filter(active=True).order_by("code")

    def clean(self):
        data = super().clean()
        if data.get("starts_at") and data.get("ends_at") and data["ends_at"] <= data["starts_at"]:
            self.add_error("ends_at", "The end must be after the start.")
        return data


class ExtendForm(Form):
    ends_at = forms.DateTimeField(
        label="New end (not included)", widget=LocalDateTimeInput(), input_formats=[DATETIME_LOCAL]
    )
    justification = forms.CharField(
        label="Why", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class ApprovalPolicyForm(Form):
    """An organization's approval rules. Owners and admins see only their own choices
    (sign-off, auto-accept); the account manager sets auto-approval as well."""

    auto_approve_max_gpus = forms.IntegerField(
        label="Approve at once up to this many GPUs", min_value=0, help_text="0: never."
    )
    auto_approve_max_value = forms.DecimalField(
        label="... and up to this total value", min_value=0, decimal_places=2, max_digits=14
    )
    auto_approve_requires_contract = forms.BooleanField(
        label="Only within an active contract's term and rates", required=False
    )
    signoff_for_members = forms.BooleanField(
        label="Requests from members need an owner's or admin's sign-off", required=False
    )
    signoff_above_value = forms.DecimalField(
        label="Requests worth at least this need sign-off",
        min_value=0,
        decimal_places=2,
        max_digits=14,
        required=False,
        help_text="Leave empty for no value rule.",
    )
    auto_accept_waitlist_offers = forms.BooleanField(
        label="Book capacity freed for a waitlisted request at once", required=False
    )

    PROVIDER_FIELDS = (
        "auto_approve_max_gpus",
        "auto_approve_max_value",
        "auto_approve_requires_contract",
    )

    def __init__(self, *args, provider: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not provider:
            for name in self.PROVIDER_FIELDS:
                del self.fields[name]
