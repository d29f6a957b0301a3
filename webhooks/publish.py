"""What request, reservation and contract-alert events carry: the ``data`` of each body.

The workflow's notification code calls these inside the transaction of each change; the event
id names the row, its version and its new state, so a repeated call never sends twice.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from .services import webhook_event_publish


def _instant(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _request_data(capacity_request, *, state: str, reason: str = "") -> dict[str, Any]:
    return {
        "request_id": capacity_request.pk,
        "reference": capacity_request.reference,
        "kind": capacity_request.kind,
        "state": state,
        "sku": capacity_request.sku.code,
        "region": capacity_request.region.code,
        "gpu_count": capacity_request.gpu_count,
        "starts_at": _instant(capacity_request.starts_at),
        "ends_at": _instant(capacity_request.ends_at),
        "on_demand_limit": capacity_request.on_demand_limit,
        "version": capacity_request.version,
        "reason": reason,
        "url": f"{settings.SITE_URL}/o/{capacity_request.organization.slug}/requests/"
        f"{capacity_request.pk}/",
    }


def request_event_publish(capacity_request, *, reason: str = "") -> None:
    """``request.<state>`` for the state the request just reached."""
    state = capacity_request.state
    webhook_event_publish(
        organization=capacity_request.organization,
        event_type=f"request.{state}",
        data=lambda: _request_data(capacity_request, state=state, reason=reason),
        event_id=f"request:{capacity_request.pk}:v{capacity_request.version}:{state}",
    )


def request_offer_held_publish(capacity_request, *, accepted_automatically: bool) -> None:
    """``request.offer_held``: an accepted offer went to the approvers (the request is pending
    approval or second approval) and its capacity is held until they decide. Besides the
    request's facts, ``offer`` (what is held: the offer's pool, GPUs and window),
    ``decision_due_at`` and whether the offer was ``accepted_automatically``."""
    state = capacity_request.state

    def data() -> dict[str, Any]:
        pool = capacity_request.pool
        return {
            **_request_data(capacity_request, state=state),
            "offer": {
                "sku": pool.sku.code if pool else capacity_request.sku.code,
                "region": pool.region.code if pool else capacity_request.region.code,
                "gpu_count": capacity_request.offer_gpu_count,
                "starts_at": _instant(capacity_request.offer_starts_at),
                "ends_at": _instant(capacity_request.offer_ends_at),
            },
            "decision_due_at": _instant(capacity_request.decision_due_at),
            "accepted_automatically": accepted_automatically,
        }

    webhook_event_publish(
        organization=capacity_request.organization,
        event_type="request.offer_held",
        data=data,
        event_id=f"request:{capacity_request.pk}:v{capacity_request.version}:offer_held",
    )


def reservation_event_publish(reservation, *, reason: str = "") -> None:
    """``reservation.<state>`` for the state the reservation just reached."""
    state = reservation.state

    def data() -> dict[str, Any]:
        return {
            "reservation_id": reservation.pk,
            "reference": reservation.reference,
            "request_id": reservation.request_id,
            "state": state,
            "sku": reservation.pool.sku.code,
            "region": reservation.pool.region.code,
            "gpu_count": reservation.gpu_count,
            "starts_at": _instant(reservation.starts_at),
            "ends_at": _instant(reservation.ends_at),
            "version": reservation.version,
            "reason": reason,
            "url": f"{settings.SITE_URL}/o/{reservation.organization.slug}/reservations/"
            f"{reservation.pk}/",
        }

    webhook_event_publish(
        organization=reservation.organization,
        event_type=f"reservation.{state}",
        data=data,
        event_id=f"reservation:{reservation.pk}:v{reservation.version}:{state}",
    )
