"""Every write about notifications: publishing, reading, preferences and e-mailing."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import Organization, User
from portal.errors import DomainError
from portal.prepared import prepared_cursor
from portal.rows import Columns

from .events import EventGroup, event_group
from .models import DEFAULT_DELIVERY, Delivery, Notification, NotificationPreference

logger = logging.getLogger(__name__)


def _absolute_url(url: str) -> str:
    if not url or url.startswith(("http://", "https://")):
        return url
    return f"{settings.SITE_URL}{url}"


def _enqueue_email(notification_id: int) -> None:
    from .tasks import send_email_task

    send_email_task.delay(notification_id)


# The recipient's delivery for the event's group (the group's default when unchosen; none
# without an e-mail address), in recipient order.
_PUBLISH_SQL = """
INSERT INTO notifications_notification
       (recipient_id, organization_id, event, title, body, url, dedupe_key, created_at,
        read_at, delivery, emailed_at)
SELECT r.user_id, %(organization)s, %(event)s, %(title)s, %(body)s, %(url)s, %(dedupe_key)s,
       %(created_at)s, NULL,
       CASE WHEN r.has_email THEN COALESCE(p.delivery, %(default)s) ELSE %(none)s END, NULL
  FROM UNNEST(%(users)s::bigint[], %(emails)s::boolean[])
       WITH ORDINALITY AS r(user_id, has_email, n)
  LEFT JOIN notifications_notificationpreference p
         ON p.user_id = r.user_id AND p."group" = %(group)s
 ORDER BY r.n
    ON CONFLICT (recipient_id, dedupe_key) DO NOTHING
RETURNING id, recipient_id, delivery
"""


def notification_publish(
    *,
    event: str,
    organization: Organization | None,
    recipients: Iterable[User],
    title: str,
    body: str,
    url: str,
    dedupe_key: str,
    actor: User | None = None,
) -> list[Notification]:
    """Tell each recipient (but the actor) about ``event``, once per ``dedupe_key``.

    Returns the notifications created by this call: publishing the same key again creates
    nothing and returns an empty list. Recipients who want this event group by e-mail at once
    get it from a Celery task after the surrounding transaction commits; a broker outage
    cannot fail the caller (the e-mail sweeper re-sends what is still pending).
    """
    if not dedupe_key:
        raise DomainError("A notification needs a dedupe key.", field="dedupe_key")
    people: dict[int, User] = {}
    for user in recipients:
        if user is None or user.pk is None or not user.is_active:
            continue
        if actor is not None and user.pk == actor.pk:
            continue
        people.setdefault(user.pk, user)
    if not people:
        return []
    group = event_group(event)
    now = timezone.now()
    fields = {
        "organization": organization,
        "event": event,
        "title": title[:200],
        "body": body,
        "url": url[:500],
        "dedupe_key": dedupe_key[:200],
        "created_at": now,
    }
    # One statement instead of a preference read and a get-or-create per recipient (a read and
    # an insert under two savepoints each): the unique (recipient, dedupe key) makes a repeated
    # or concurrent publish insert nothing, as get_or_create did. Every move of a request that
    # tells someone runs it: prepared once per connection, not planned each time.
    with prepared_cursor() as cursor:
        cursor.execute(
            _PUBLISH_SQL,
            {
                "users": list(people),
                "emails": [bool(user.email) for user in people.values()],
                "organization": organization.pk if organization is not None else None,
                "event": fields["event"],
                "title": fields["title"],
                "body": body,
                "url": fields["url"],
                "dedupe_key": fields["dedupe_key"],
                "created_at": now,
                "group": group,
                "default": str(DEFAULT_DELIVERY[group]),
                "none": str(Delivery.NONE),
            },
        )
        inserted = {recipient_id: (pk, delivery) for pk, recipient_id, delivery in cursor}
    created: list[Notification] = []
    for user_id, user in people.items():
        if user_id not in inserted:
            continue
        pk, delivery = inserted[user_id]
        notification = Notification(pk=pk, recipient=user, delivery=delivery, **fields)
        notification._state.adding = False
        notification._state.db = connection.alias
        created.append(notification)
        if delivery == Delivery.IMMEDIATE:
            transaction.on_commit(lambda pk=pk: _enqueue_email(pk), robust=True)
    return created


@transaction.atomic
def notification_email_send(*, notification_id: int) -> bool:
    """Send one notification's e-mail unless it went already. True when this call sent it.

    The notification is claimed first (``emailed_at`` set, the row locked until commit) and
    the e-mail sent inside the same transaction: a failed send rolls the claim back, so the
    sweeper sends it again; a second delivery of the same task waits for the lock and then
    finds the e-mail claimed, and sends nothing.
    """
    notification = _notification_claim(notification_id, now=timezone.now())
    if notification is None:
        return False
    context = {
        "notification": notification,
        "recipient": notification.recipient,
        "organization": notification.organization,
        "absolute_url": _absolute_url(notification.url),
        "preferences_url": _absolute_url("/notifications/preferences/"),
    }
    message = EmailMultiAlternatives(
        subject=render_to_string("notifications/email/notification_subject.txt", context)
        .strip()
        .replace("\n", " "),
        body=render_to_string("notifications/email/notification.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.recipient.email],
    )
    message.attach_alternative(
        render_to_string("notifications/email/notification.html", context), "text/html"
    )
    message.send()
    return True


@functools.cache
def _notification_claim_statement() -> tuple[str, tuple[Columns, ...]]:
    parts = (Columns(Notification, "n"), Columns(User, "u"), Columns(Organization, "o"))
    quote = connection.ops.quote_name
    notifications, users = quote(Notification._meta.db_table), quote(User._meta.db_table)
    sql = (
        f"WITH n AS (UPDATE {notifications} SET emailed_at = %s "  # noqa: S608 (names from the models)
        "WHERE id = %s AND emailed_at IS NULL AND delivery = %s "
        f"AND EXISTS (SELECT FROM {users} r WHERE r.id = recipient_id AND r.email <> '') "
        f"RETURNING *) SELECT {', '.join(part.sql for part in parts)} "
        f"FROM n JOIN {users} u ON u.id = n.recipient_id "
        f"LEFT JOIN {quote(Organization._meta.db_table)} o ON o.id = n.organization_id"
    )
    return sql, parts


def _notification_claim(notification_id: int, *, now: datetime) -> Notification | None:
    """The notification, with its recipient and organization, when its e-mail is still to be
    sent (immediate delivery, not e-mailed yet, a recipient with an address): ``emailed_at`` is
    set to ``now`` and the row stays locked until the caller's transaction ends. None otherwise.

    One statement, written once per process and prepared once per connection, where the task
    locked the row with one and stored ``emailed_at`` with another: the update waits for a
    concurrent claim's transaction and then sees its ``emailed_at``."""
    sql, (notification_part, user_part, organization_part) = _notification_claim_statement()
    with prepared_cursor() as cursor:
        cursor.execute(sql, [now, notification_id, Delivery.IMMEDIATE.value])
        row = cursor.fetchone()
    if row is None:
        return None
    a, b = len(notification_part), len(notification_part) + len(user_part)
    notification = notification_part.load(row[:a])
    notification.recipient = user_part.load(row[a:b])
    notification.organization = organization_part.load_or_none(row[b:])
    return notification


@transaction.atomic
def notification_digest_send(*, user_id: int) -> int:
    """One e-mail listing a user's digest notifications not yet e-mailed. Returns how many.

    The recipient's row is locked so two digest runs for the same user send one e-mail.
    """
    user = User.objects.select_for_update().filter(pk=user_id, is_active=True).first()
    if user is None or not user.email:
        return 0
    pending = list(
        Notification.objects.filter(
            recipient=user, delivery=Delivery.DIGEST, emailed_at__isnull=True
        )
        .select_related("organization")
        .order_by("created_at", "id")
    )
    if not pending:
        return 0
    context = {
        "recipient": user,
        "notifications": [(n, _absolute_url(n.url)) for n in pending],
        "centre_url": _absolute_url("/notifications/"),
        "preferences_url": _absolute_url("/notifications/preferences/"),
    }
    message = EmailMultiAlternatives(
        subject=f"GPU Capacity Portal: {len(pending)} update{'s' if len(pending) != 1 else ''}",
        body=render_to_string("notifications/email/digest.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
    )
    message.attach_alternative(
        render_to_string("notifications/email/digest.html", context), "text/html"
    )
    message.send()
    Notification.objects.filter(pk__in=[n.pk for n in pending]).update(emailed_at=timezone.now())
    return len(pending)


def notification_email_pending_ids(*, older_than: timedelta) -> list[int]:
    """Immediate e-mails still unsent after ``older_than``: their task was lost or failed."""
    cutoff = timezone.now() - older_than
    return list(
        Notification.objects.filter(
            delivery=Delivery.IMMEDIATE, emailed_at__isnull=True, created_at__lt=cutoff
        )
        .order_by("id")
        .values_list("id", flat=True)[:1000]
    )


def notification_digest_recipient_ids() -> list[int]:
    return list(
        Notification.objects.filter(delivery=Delivery.DIGEST, emailed_at__isnull=True)
        .order_by()
        .values_list("recipient_id", flat=True)
        .distinct()
    )


def notification_mark_read(*, user: User, notification_id: int) -> Notification:
    notification = Notification.objects.filter(recipient=user, pk=notification_id).first()
    if notification is None:
        raise DomainError("No such notification.", field="notification")
    if notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
    return notification


def notification_mark_all_read(
    *,
    user: User,
    organization: Organization | None = None,
    up_to_id: int | None = None,
    up_to: datetime | None = None,
) -> int:
    """Mark the user's unread notifications read; returns how many.

    ``organization`` limits it to those about one organization; ``up_to_id`` and ``up_to``
    (inclusive) to those no newer than the last one the caller has seen, so a script that
    read a page does not mark what arrived since.
    """
    qs = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if organization is not None:
        qs = qs.filter(organization=organization)
    if up_to_id is not None:
        qs = qs.filter(pk__lte=up_to_id)
    if up_to is not None:
        qs = qs.filter(created_at__lte=up_to)
    return qs.update(read_at=timezone.now())


@transaction.atomic
def notification_preferences_set(*, user: User, deliveries: dict[str, str]) -> dict[str, str]:
    """Store the user's delivery per event group; unknown groups or deliveries are refused."""
    for group, delivery in deliveries.items():
        if group not in EventGroup.values:
            raise DomainError(f"Unknown event group {group!r}.", field=group)
        if delivery not in Delivery.values:
            raise DomainError(f"Choose one of: {', '.join(Delivery.labels)}.", field=group)
    for group, delivery in deliveries.items():
        NotificationPreference.objects.update_or_create(
            user=user, group=group, defaults={"delivery": delivery}
        )
    return deliveries
