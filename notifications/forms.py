from django import forms

from .events import EventGroup
from .models import Delivery


class NotificationPreferencesForm(forms.Form):
    """One choice of delivery per event group."""

    def __init__(self, *args, initial_deliveries: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        for group in EventGroup:
            self.fields[group.value] = forms.ChoiceField(
                label=group.label,
                choices=Delivery.choices,
                initial=initial_deliveries[group.value],
                widget=forms.RadioSelect,
            )
