from datetime import UTC, datetime, time

from django import forms

from .models import TIME_ZONE_CHOICES, Role


class InvitationForm(forms.Form):
    email = forms.EmailField(
        label="E-mail address",
        widget=forms.EmailInput(attrs={"autocomplete": "off", "placeholder": "name@company.com"}),
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args, actor_role: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if actor_role != Role.OWNER:
            # Only an owner may make someone else an owner; the service enforces it too.
            self.fields["role"].choices = [c for c in Role.choices if c[0] != Role.OWNER]


class MembershipRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class OrganizationSettingsForm(forms.Form):
    name = forms.CharField(max_length=200)
    time_zone = forms.ChoiceField(
        choices=TIME_ZONE_CHOICES,
        help_text="Dates and reservation windows are shown in this time zone.",
    )
    require_mfa = forms.BooleanField(
        required=False,
        label="Require two-factor authentication for every member",
        help_text="Members without an authenticator app are sent to set one up first.",
    )

    def __init__(self, *args, read_only: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if read_only:
            for field in self.fields.values():
                field.disabled = True


class AuditFilterForm(forms.Form):
    action = forms.CharField(
        required=False,
        label="Action starts with",
        widget=forms.TextInput(attrs={"placeholder": "membership."}),
    )
    actor = forms.CharField(required=False, label="Actor e-mail contains")
    since = forms.DateField(
        required=False, label="From (UTC date)", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="Before (UTC date)", widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["until"] <= data["since"]:
            self.add_error("until", "Must be after the From date.")
        return data


class ApiKeyForm(forms.Form):
    """What the API keys page asks for; the service judges name, scopes and expiry, so the page
    and the API give the same answers."""

    name = forms.CharField(
        required=False,
        max_length=100,
        help_text="What uses the key, e.g. “CI pipeline” or “capacity planning script”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    scopes = forms.MultipleChoiceField(
        required=False,
        choices=[
            ("read", "Read: see requests, reservations, usage and contracts"),
            ("write", "Write: create and change requests and reservations"),
        ],
        initial=["read"],
        widget=forms.CheckboxSelectMultiple,
        help_text="A key never does more than your own role allows.",
    )
    expires_at = forms.DateField(
        required=False,
        label="Expires on (optional)",
        help_text="The key stops working at 00:00 UTC on this date. Leave empty for no expiry.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def expires_at_instant(self) -> datetime | None:
        day = self.cleaned_data.get("expires_at")
        return None if day is None else datetime.combine(day, time.min, UTC)
