"""An organization's name goes into e-mail subjects (invitations, notifications), where a line
break makes the mail library refuse the message: the name stays on one line."""

import pytest
from django.core import mail
from django.urls import reverse

from accounts.services import invitation_create


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["Acme\nBcc: someone@elsewhere.example", "Ac\rme", "Ac\x00me"])
def test_a_name_with_a_line_break_is_refused_on_its_field(client, org, owner, name):
    client.force_login(owner)
    url = reverse("organization_settings", kwargs={"org_slug": org.slug})
    response = client.post(url, {"name": name, "time_zone": "UTC"})
    assert response.status_code == 400
    assert response.context["form"].errors["name"]
    org.refresh_from_db()
    assert org.name == "Acme"


@pytest.mark.django_db
def test_invitation_mail_goes_out_for_a_renamed_organization(
    client, org, owner, django_capture_on_commit_callbacks
):
    client.force_login(owner)
    url = reverse("organization_settings", kwargs={"org_slug": org.slug})
    assert client.post(url, {"name": "Acme Labs", "time_zone": "UTC"}).status_code == 302
    org.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        invitation_create(
            organization=org, email="new@acme.example", role="member", invited_by=owner
        )
    assert [m.subject for m in mail.outbox] == [
        "You are invited to Acme Labs on the GPU Capacity Portal"
    ]
