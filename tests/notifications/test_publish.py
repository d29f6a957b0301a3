"""Publishing is one statement: each recipient's delivery is its choice for the event's group
(or the group's default, or none without an address), a key already notified is skipped, and
what the call returns is what was stored."""

import threading

import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from notifications.events import event_group
from notifications.models import Delivery, Notification
from notifications.selectors import notification_preferences_get
from notifications.services import notification_preferences_set, notification_publish
from tests.conftest import make_member

EVENT = "request.approval_needed"


def _publish(org, recipients, key="request:7:v3:pending_approval", actor=None):
    return notification_publish(
        event=EVENT,
        organization=org,
        recipients=recipients,
        title="t" * 250,
        body="REQ-7: 8 GPUs.",
        url="/o/acme/requests/7/" + "x" * 600,
        dedupe_key=key,
        actor=actor,
    )


@pytest.mark.django_db
def test_publish_stores_each_choice_skips_the_notified_and_returns_what_it_stored(
    org, owner, member
):
    group = event_group(EVENT)
    notification_preferences_set(user=owner, deliveries={group: Delivery.DIGEST})
    notification_preferences_set(user=member, deliveries={"requests": Delivery.NONE})
    unchosen = make_member(org, email="third@acme.example")
    no_address = make_member(org, email="", verified=False)
    gone = make_member(org, email="gone@acme.example", is_active=False)
    already = make_member(org, email="told@acme.example")
    (earlier,) = _publish(org, [already])

    with CaptureQueriesContext(connection) as queries:
        created = _publish(org, [owner, already, gone, member, unchosen, no_address, owner])
    assert len(queries.captured_queries) == 1

    assert [n.recipient for n in created] == [owner, member, unchosen, no_address]
    expected = {
        user.pk: notification_preferences_get(user=user)[group] if user.email else Delivery.NONE
        for user in (owner, member, unchosen, no_address)
    }
    assert {n.recipient_id: n.delivery for n in created} == expected
    assert expected == {
        owner.pk: Delivery.DIGEST,
        member.pk: Delivery.IMMEDIATE,  # a choice for another group does not count
        unchosen.pk: Delivery.IMMEDIATE,
        no_address.pk: Delivery.NONE,
    }
    stored = {n.pk: n for n in Notification.objects.filter(pk__in=[n.pk for n in created])}
    for notification in created:
        assert model_to_dict(notification) == model_to_dict(stored[notification.pk])
        assert notification.created_at == stored[notification.pk].created_at
        assert len(notification.title) == 200 and len(notification.url) == 500
    assert Notification.objects.filter(recipient=already).get() == earlier
    assert not Notification.objects.filter(recipient=gone).exists()


@pytest.mark.django_db(transaction=True)
def test_the_same_key_published_twice_at_once_is_stored_once(org, owner, member):
    barrier = threading.Barrier(2)
    results = []

    def publish():
        try:
            barrier.wait(timeout=10)
            results.append(len(_publish(org, [owner, member])))
        finally:
            connection.close()

    threads = [threading.Thread(target=publish) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [0, 2]
    assert Notification.objects.count() == 2


@pytest.mark.django_db
def test_the_email_claim_reads_what_the_orm_read_and_marks_it_emailed(org, member):
    from django.db import transaction
    from django.utils import timezone

    from notifications.services import _notification_claim

    (with_org,) = _publish(org, [member])
    (without_org,) = _publish(None, [member], key="account:1")

    def values(obj):
        return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}

    now = timezone.now()
    for notification in (with_org, without_org):
        expected = (
            Notification.objects.select_related("recipient", "organization")
            .filter(pk=notification.pk)
            .first()
        )
        with transaction.atomic():
            with CaptureQueriesContext(connection) as queries:
                found = _notification_claim(notification.pk, now=now)
            assert len(queries.captured_queries) == 1
        expected.emailed_at = now
        assert values(found) == values(expected)
        assert values(found) == values(Notification.objects.get(pk=notification.pk))
        assert values(found.recipient) == values(expected.recipient)
        assert (found.organization and values(found.organization)) == (
            expected.organization and values(expected.organization)
        )
    assert found.organization is None
    with transaction.atomic():
        assert _notification_claim(10**9, now=now) is None
        assert _notification_claim(with_org.pk, now=now) is None  # claimed already


@pytest.mark.django_db
def test_the_email_claim_leaves_what_is_not_e_mailed_at_once_unclaimed(org, owner, member):
    from django.utils import timezone

    from notifications.services import _notification_claim

    notification_preferences_set(user=owner, deliveries={event_group(EVENT): Delivery.DIGEST})
    no_address = make_member(org, email="", verified=False)
    created = _publish(org, [owner, no_address, member])
    assert [n.delivery for n in created] == [Delivery.DIGEST, Delivery.NONE, Delivery.IMMEDIATE]
    # A stored choice of immediate delivery for someone whose address was removed since.
    Notification.objects.filter(recipient=no_address).update(delivery=Delivery.IMMEDIATE)
    now = timezone.now()
    assert _notification_claim(created[0].pk, now=now) is None
    assert _notification_claim(created[1].pk, now=now) is None
    assert _notification_claim(created[2].pk, now=now).recipient == member
    assert dict(Notification.objects.values_list("recipient_id", "emailed_at")) == {
        owner.pk: None,
        no_address.pk: None,
        member.pk: now,
    }
