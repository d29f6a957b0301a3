"""The events an organization's webhook endpoints may subscribe to.

Request and reservation events are named after the state the object reached
(``request.approved``, ``reservation.activated`` is ``reservation.active``), so the catalogue
follows the workflow tables; ``request.offer_held`` is the one step inside a state with an event
of its own (an accepted offer sent to the approvers, its capacity held), and contract and quota
alerts are named as their notifications are.
"""

from __future__ import annotations

from quotas.workflow import RequestState, ReservationState

# A draft is private to its author and the checks are a step inside submission: no events.
REQUEST_EVENTS = {
    f"request.{state}": f"Request: {label}"
    for state, label in RequestState.choices
    if state not in (RequestState.DRAFT, RequestState.CHECKING)
}
# Steps inside a state, with an event of their own.
REQUEST_EVENTS["request.offer_held"] = (
    "Request: offer accepted, capacity held while the approvers decide"
)
# A reservation is scheduled by the approval that makes it: ``request.approved`` says so.
RESERVATION_EVENTS = {
    f"reservation.{state}": f"Reservation: {label}"
    for state, label in ReservationState.choices
    if state != ReservationState.SCHEDULED
}
ALERT_EVENTS = {
    "contract.spend_threshold": "Contract: committed spend consumed crossed 50, 80 or 100 %",
    "contract.underuse_forecast": "Contract: commitment forecast to be under-used at term end",
    "quota.utilization": "Quota: GPUs in use crossed 80, 95 or 100 % of the quota",
}

EVENT_TYPES: dict[str, str] = {**REQUEST_EVENTS, **RESERVATION_EVENTS, **ALERT_EVENTS}
EVENT_CHOICES = sorted(EVENT_TYPES.items())
