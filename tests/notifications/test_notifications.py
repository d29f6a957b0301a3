import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from notifications.models import Delivery, Notification
from notifications.services import (
    notification_digest_send,
    notification_email_pending_ids,
    notification_mark_all_read,
    notification_preferences_set,
    notification_publish,
)
from notifications.tasks import send_email_task
from tests.conftest import make_member
from tests.factories import PASSWORD


def publish(org, recipients, key="request:1:approved", event="request.approved", actor=None):
    return notification_publish(
        event=event,
        organization=org,
        recipients=recipients,
        title="Request #1 approved",
        body="64 H100 in us-east-1.",
        url="/o/acme/requests/1/",
        dedupe_key=key,
        actor=actor,
    )


@pytest.mark.django_db
def test_publish_creates_one_per_recipient_and_skips_the_actor(org, owner, member):
    created = publish(org, [owner, member, member], actor=owner)
    assert [n.recipient for n in created] == [member]
    assert Notification.objects.filter(recipient=owner).count() == 0


@pytest.mark.django_db
def test_publishing_the_same_key_twice_creates_nothing_new(org, owner, member):
    first = publish(org, [owner, member])
    second = publish(org, [owner, member])
    assert len(first) == 2
    assert second == []
    assert Notification.objects.count() == 2
    # A different key is a different notification.
    assert len(publish(org, [owner], key="request:1:activated")) == 1


@pytest.mark.django_db
def test_email_is_enqueued_after_commit_only_for_immediate_delivery(
    org, owner, member, django_capture_on_commit_callbacks
):
    notification_preferences_set(user=owner, deliveries={"requests": Delivery.NONE})
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        created = publish(org, [owner, member])
    by_recipient = {n.recipient_id: n for n in created}
    assert by_recipient[owner.pk].delivery == Delivery.NONE
    assert by_recipient[member.pk].delivery == Delivery.IMMEDIATE
    assert len(callbacks) == 1
    assert mail.outbox == []  # nothing leaves before commit


@pytest.mark.django_db
def test_email_task_sends_text_and_html_once(org, member):
    (notification,) = publish(org, [member])
    assert send_email_task.apply(args=[notification.pk]).get() is True
    assert send_email_task.apply(args=[notification.pk]).get() is False
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [member.email]
    assert message.subject == "[Acme] Request #1 approved"
    assert "http://" in message.body and "/o/acme/requests/1/" in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and "Request #1 approved" in html
    notification.refresh_from_db()
    assert notification.emailed_at is not None


@pytest.mark.django_db(transaction=True)
def test_email_task_delivered_twice_at_once_sends_one_email(org, member):
    (notification,) = publish(org, [member])
    barrier = threading.Barrier(2)
    results = []

    def deliver():
        try:
            barrier.wait(timeout=10)
            results.append(send_email_task.apply(args=[notification.pk]).get())
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [False, True]
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_email_that_fails_to_send_stays_pending_and_is_sent_by_the_next_try(
    org, member, monkeypatch
):
    from django.core.mail.backends.locmem import EmailBackend

    (notification,) = publish(org, [member])

    def refuse(self, messages):
        raise ConnectionRefusedError("SMTP server down")

    with monkeypatch.context() as patched:
        patched.setattr(EmailBackend, "send_messages", refuse)
        with pytest.raises(ConnectionRefusedError):
            send_email_task.apply(args=[notification.pk], throw=True)
    notification.refresh_from_db()
    assert notification.emailed_at is None
    assert mail.outbox == []
    assert send_email_task.apply(args=[notification.pk]).get() is True
    assert len(mail.outbox) == 1
    notification.refresh_from_db()
    assert notification.emailed_at is not None


@pytest.mark.django_db
def test_digest_sends_one_email_for_all_pending_and_then_nothing(org, member):
    notification_preferences_set(user=member, deliveries={"reservations": Delivery.DIGEST})
    publish(org, [member], key="reservation:1:activated", event="reservation.activated")
    publish(org, [member], key="reservation:2:activated", event="reservation.activated")
    publish(org, [member], key="request:9:approved")  # immediate: not in the digest
    assert notification_digest_send(user_id=member.pk) == 2
    assert notification_digest_send(user_id=member.pk) == 0
    assert len(mail.outbox) == 1
    assert "2 updates" in mail.outbox[0].subject


@pytest.mark.django_db
def test_sweeper_finds_immediate_emails_left_unsent(org, member, owner):
    notification_preferences_set(user=owner, deliveries={"requests": Delivery.NONE})
    publish(org, [member, owner])
    assert notification_email_pending_ids(older_than=timedelta(minutes=10)) == []
    Notification.objects.update(created_at=timezone.now() - timedelta(minutes=11))
    pending = notification_email_pending_ids(older_than=timedelta(minutes=10))
    assert pending == [Notification.objects.get(recipient=member).pk]


@pytest.mark.django_db
def test_mark_all_read_touches_only_own_notifications(org, owner, member):
    publish(org, [owner, member])
    assert notification_mark_all_read(user=member) == 1
    assert Notification.objects.get(recipient=owner).read_at is None


@pytest.mark.django_db
def test_notification_centre_shows_own_and_opens_marking_read(client, org, owner, member):
    publish(org, [owner, member])
    client.login(email=member.email, password=PASSWORD)
    response = client.get(reverse("notification_list"))
    assert response.status_code == 200
    assert b"Request #1 approved" in response.content
    mine = Notification.objects.get(recipient=member)
    response = client.post(reverse("notification_read", args=[mine.pk]), {"open": "1"})
    assert response.status_code == 302 and response.url == "/o/acme/requests/1/"
    mine.refresh_from_db()
    assert mine.read_at is not None
    theirs = Notification.objects.get(recipient=owner)
    client.post(reverse("notification_read", args=[theirs.pk]))
    theirs.refresh_from_db()
    assert theirs.read_at is None


@pytest.mark.django_db
def test_notification_centre_query_count_is_flat(client, org, member, django_assert_num_queries):
    client.login(email=member.email, password=PASSWORD)
    url = reverse("notification_list")
    publish(org, [member], key="k0")
    client.get(url)
    # session, user, count for the paginator, page of notifications, organization switcher
    with django_assert_num_queries(5):
        client.get(url)
    for i in range(1, 20):
        publish(org, [member], key=f"k{i}")
    with django_assert_num_queries(5):
        response = client.get(url)
    assert response.content.count(b"Request #1 approved") == 20


@pytest.mark.django_db
def test_badge_counts_unread(client, org, member):
    publish(org, [member], key="a")
    publish(org, [member], key="b")
    client.login(email=member.email, password=PASSWORD)
    response = client.get(reverse("notification_badge"))
    assert b">2<" in response.content
    notification_mark_all_read(user=member)
    assert b"badge-unread" not in client.get(reverse("notification_badge")).content


@pytest.mark.django_db
def test_preferences_page_saves_choice(client, member):
    client.login(email=member.email, password=PASSWORD)
    url = reverse("notification_preferences")
    assert client.get(url).status_code == 200
    data = {
        "requests": "none",
        "reservations": "digest",
        "approvals": "immediate",
        "reminders": "immediate",
        "account": "immediate",
        "contracts": "immediate",
        "quotas": "none",
        "other": "digest",
    }
    assert client.post(url, data).status_code == 302
    from notifications.selectors import notification_preferences_get

    assert notification_preferences_get(user=member)["requests"] == "none"
    response = client.post(url, {**data, "requests": "carrier-pigeon"})
    assert response.status_code == 200
    assert b"field-error" in response.content


@pytest.mark.django_db
def test_org_notification_list_shows_only_that_org(client, org, other_org, owner):
    other_membership_user = make_member(other_org, email="both@example.com")
    make_member(org, email="x@example.com")
    publish(org, [owner], key="a")
    client.login(email=owner.email, password=PASSWORD)
    response = client.get(reverse("org_notification_list", kwargs={"org_slug": "acme"}))
    assert response.status_code == 200 and b"Request #1 approved" in response.content
    assert (
        client.get(reverse("org_notification_list", kwargs={"org_slug": "globex"})).status_code
        == 404
    )
    assert other_membership_user.pk


def test_contract_and_quota_events_have_groups_of_their_own():
    from notifications.events import EventGroup, event_group

    assert event_group("contract.spend_threshold") == EventGroup.CONTRACTS
    assert event_group("contract.underuse_forecast") == EventGroup.CONTRACTS
    assert event_group("quota.utilization") == EventGroup.QUOTAS
    assert event_group("webhook.disabled") == EventGroup.OTHER


@pytest.mark.django_db
def test_contract_and_quota_alerts_follow_their_own_choices(client, org, member):
    client.login(email=member.email, password=PASSWORD)
    page = client.get(reverse("notification_preferences")).content.decode()
    assert "Contract alerts" in page and "Quota alerts" in page
    notification_preferences_set(
        user=member, deliveries={"contracts": Delivery.DIGEST, "quotas": Delivery.NONE}
    )
    (spend,) = publish(org, [member], key="c", event="contract.spend_threshold")
    (quota,) = publish(org, [member], key="q", event="quota.utilization")
    (other,) = publish(org, [member], key="w", event="webhook.disabled")
    assert (spend.delivery, quota.delivery, other.delivery) == ("digest", "none", "digest")
    notification_preferences_set(user=member, deliveries={"contracts": Delivery.NONE})
    (later,) = publish(org, [member], key="c2", event="contract.spend_threshold")
    assert later.delivery == "none"
    # The defaults: alerts fire once per crossing, so they go out at once.
    (fresh,) = publish(
        org, [make_member(org, email="new@acme.example")], key="q2", event="quota.utilization"
    )
    assert fresh.delivery == "immediate"
