"""Receivers of the capacity signals (connected in ``QuotasConfig.ready``).

Both signals are sent after the capacity change commits; they are hints, the database stays the
source of truth (the waitlist scan repeats the offer work on schedule)."""

from __future__ import annotations

from django.db import transaction

from quotas.models import Reservation


def on_capacity_freed(sender, pool_id: int, **kwargs) -> None:
    from quotas.tasks import waitlist_offer_task

    transaction.on_commit(lambda: waitlist_offer_task.delay(pool_id), robust=True)


def on_holds_at_risk(sender, hold_ids, **kwargs) -> None:
    from quotas import notify

    reservations = list(
        Reservation.objects.unscoped_for_staff()
        .filter(hold_id__in=list(hold_ids))
        .select_related("organization__account_manager", "pool__sku", "pool__region", "request")
    )
    if reservations:
        with transaction.atomic():
            notify.reservations_at_risk(reservations)
