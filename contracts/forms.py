from django import forms

from .models import ContractDocument


class ContractDocumentForm(forms.Form):
    title = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=ContractDocument.Kind.choices)
    file = forms.FileField(
        help_text="PDF, PNG or JPEG; checked by its content, not its name.",
        allow_empty_file=True,  # the service names the problem
    )
