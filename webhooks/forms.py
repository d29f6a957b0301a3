from django import forms

from .events import EVENT_CHOICES


class WebhookEndpointForm(forms.Form):
    url = forms.CharField(
        label="URL",
        max_length=500,
        help_text="Where events are POSTed as signed JSON. https:// in production.",
        widget=forms.URLInput(attrs={"placeholder": "https://hooks.example.com/portal"}),
    )
    description = forms.CharField(max_length=200, required=False)
    events = forms.MultipleChoiceField(
        choices=EVENT_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        help_text="The events sent to this URL.",
    )


class DeliveryFilterForm(forms.Form):
    STATUS_CHOICES = [
        ("", "Any status"),
        ("pending", "Pending"),
        ("retrying", "Retrying"),
        ("succeeded", "Succeeded"),
        ("failed", "Failed"),
    ]
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False)
