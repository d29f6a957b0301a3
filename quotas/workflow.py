"""States and legal transitions of capacity requests and reservations.

Pure data: the services in ``quotas.services`` consult these tables before every move and
refuse anything not listed with ``portal.errors.IllegalTransition``. ``docs/workflow.md``
draws the same tables as diagrams; a test generates every legal and illegal move from them.
"""

from __future__ import annotations

from django.db import models

from portal.errors import IllegalTransition


class RequestState(models.TextChoices):
    DRAFT = "draft", "Draft"
    PENDING_INTERNAL_APPROVAL = "pending_internal_approval", "Awaiting sign-off"
    SUBMITTED = "submitted", "Submitted"
    CHECKING = "checking", "Checking"
    PENDING_APPROVAL = "pending_approval", "Awaiting approval"
    PENDING_SECOND_APPROVAL = "pending_second_approval", "Awaiting second approval"
    COUNTER_OFFERED = "counter_offered", "Counter-offered"
    WAITLISTED = "waitlisted", "Waitlisted"
    OFFERED = "offered", "Offered from waitlist"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


class ReservationState(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    RELEASED_EARLY = "released_early", "Released early"
    CANCELLED = "cancelled", "Cancelled"


R = RequestState

# from state -> states it may move to. Terminal states map to the empty set.
REQUEST_TRANSITIONS: dict[str, frozenset[str]] = {
    R.DRAFT: frozenset({R.PENDING_INTERNAL_APPROVAL, R.SUBMITTED, R.WITHDRAWN}),
    R.PENDING_INTERNAL_APPROVAL: frozenset({R.SUBMITTED, R.REJECTED, R.WITHDRAWN, R.EXPIRED}),
    R.SUBMITTED: frozenset({R.CHECKING, R.WITHDRAWN, R.EXPIRED}),
    R.CHECKING: frozenset(
        {R.PENDING_APPROVAL, R.APPROVED, R.REJECTED, R.WAITLISTED, R.WITHDRAWN, R.EXPIRED}
    ),
    R.PENDING_APPROVAL: frozenset(
        {
            R.PENDING_SECOND_APPROVAL,
            R.APPROVED,
            R.REJECTED,
            R.COUNTER_OFFERED,
            R.WAITLISTED,
            R.WITHDRAWN,
            R.EXPIRED,
        }
    ),
    R.PENDING_SECOND_APPROVAL: frozenset(
        {R.APPROVED, R.REJECTED, R.COUNTER_OFFERED, R.WITHDRAWN, R.EXPIRED}
    ),
    # Declining an offer withdraws the request; a lapsed offer expires it. An accepted
    # counter-offer whose own terms are above the second-approval thresholds goes to the
    # capacity planners with its hold kept; any other accepted counter-offer is booked at once.
    R.COUNTER_OFFERED: frozenset({R.APPROVED, R.PENDING_SECOND_APPROVAL, R.WITHDRAWN, R.EXPIRED}),
    R.WAITLISTED: frozenset({R.OFFERED, R.WITHDRAWN, R.EXPIRED}),
    # A waitlist offer accepted on a request that still needs a provider decision (flagged by
    # the checks, or above the second-approval thresholds) goes to the account manager with its
    # hold kept; any other accepted offer is booked at once.
    R.OFFERED: frozenset({R.APPROVED, R.PENDING_APPROVAL, R.WITHDRAWN, R.EXPIRED}),
    # An approved reservation request is cancelled with its reservation (before start).
    R.APPROVED: frozenset({R.CANCELLED}),
    R.REJECTED: frozenset(),
    R.WITHDRAWN: frozenset(),
    R.CANCELLED: frozenset(),
    R.EXPIRED: frozenset(),
}

# States in which the provider owes a decision (the decision due time runs).
REQUEST_AWAITING_DECISION = frozenset({R.PENDING_APPROVAL, R.PENDING_SECOND_APPROVAL})
# States in which the tenant owes an answer to an offer that holds capacity.
REQUEST_OFFER_STATES = frozenset({R.COUNTER_OFFERED, R.OFFERED})
# Undecided states: a request still in one of these at its start expires.
REQUEST_UNDECIDED = frozenset(
    {
        R.PENDING_INTERNAL_APPROVAL,
        R.SUBMITTED,
        R.CHECKING,
        R.PENDING_APPROVAL,
        R.PENDING_SECOND_APPROVAL,
        R.COUNTER_OFFERED,
        R.WAITLISTED,
        R.OFFERED,
    }
)
# Work the automatic checks still have to do (the sweeper re-dispatches these when stuck).
REQUEST_IN_CHECKS = frozenset({R.SUBMITTED, R.CHECKING})
REQUEST_TERMINAL = frozenset(s for s, targets in REQUEST_TRANSITIONS.items() if not targets)
REQUEST_OPEN = frozenset(RequestState.values) - REQUEST_TERMINAL - {R.APPROVED}

# What each use case may start from (its targets must be legal moves in the table above).
# People act through services; "run_checks", "expire" and "waitlist_offer" are the system's.
REQUEST_ACTIONS: dict[str, frozenset[str]] = {
    "update": frozenset({R.DRAFT}),
    "submit": frozenset({R.DRAFT}),
    "sign_off": frozenset({R.PENDING_INTERNAL_APPROVAL}),
    "run_checks": REQUEST_IN_CHECKS,
    "approve": REQUEST_AWAITING_DECISION,
    "reject": REQUEST_AWAITING_DECISION,
    "counter_offer": REQUEST_AWAITING_DECISION,
    "accept_offer": REQUEST_OFFER_STATES,
    "decline_offer": REQUEST_OFFER_STATES,
    "waitlist": frozenset({R.PENDING_APPROVAL}),
    "withdraw": REQUEST_UNDECIDED | {R.DRAFT},
    "expire": REQUEST_UNDECIDED,
    "waitlist_offer": frozenset({R.WAITLISTED}),
}
# The states each action may lead to.
REQUEST_ACTION_TARGETS: dict[str, frozenset[str]] = {
    "update": frozenset({R.DRAFT}),
    "submit": frozenset({R.PENDING_INTERNAL_APPROVAL, R.SUBMITTED}),
    "sign_off": frozenset({R.SUBMITTED, R.REJECTED}),
    "run_checks": frozenset({R.CHECKING, R.PENDING_APPROVAL, R.APPROVED, R.REJECTED, R.WAITLISTED}),
    "approve": frozenset({R.PENDING_SECOND_APPROVAL, R.APPROVED}),
    "reject": frozenset({R.REJECTED}),
    "counter_offer": frozenset({R.COUNTER_OFFERED}),
    "accept_offer": frozenset({R.APPROVED, R.PENDING_APPROVAL, R.PENDING_SECOND_APPROVAL}),
    "decline_offer": frozenset({R.WITHDRAWN}),
    "waitlist": frozenset({R.WAITLISTED}),
    "withdraw": frozenset({R.WITHDRAWN}),
    "expire": frozenset({R.EXPIRED}),
    # Booked (or sent to the approvers) at once when the organization auto-accepts.
    "waitlist_offer": frozenset({R.OFFERED, R.APPROVED, R.PENDING_APPROVAL}),
}

V = ReservationState

RESERVATION_TRANSITIONS: dict[str, frozenset[str]] = {
    V.SCHEDULED: frozenset({V.ACTIVE, V.CANCELLED}),
    V.ACTIVE: frozenset({V.COMPLETED, V.RELEASED_EARLY}),
    V.COMPLETED: frozenset(),
    V.RELEASED_EARLY: frozenset(),
    V.CANCELLED: frozenset(),
}
# Reservations that hold capacity and count towards quota (when active).
RESERVATION_HOLDING = frozenset({V.SCHEDULED, V.ACTIVE})

RESERVATION_ACTIONS: dict[str, frozenset[str]] = {
    "activate": frozenset({V.SCHEDULED}),
    "complete": frozenset({V.ACTIVE}),
    "cancel": frozenset({V.SCHEDULED}),
    "release_early": frozenset({V.ACTIVE}),
    "extend": RESERVATION_HOLDING,
}
RESERVATION_ACTION_TARGETS: dict[str, frozenset[str]] = {
    "activate": frozenset({V.ACTIVE}),
    "complete": frozenset({V.COMPLETED}),
    "cancel": frozenset({V.CANCELLED}),
    "release_early": frozenset({V.RELEASED_EARLY}),
    "extend": frozenset(),  # a new request; the reservation stays as it is
}


def request_can_move(current: str, target: str) -> bool:
    return target in REQUEST_TRANSITIONS.get(current, frozenset())


def reservation_can_move(current: str, target: str) -> bool:
    return target in RESERVATION_TRANSITIONS.get(current, frozenset())


def request_require_move(current: str, target: str) -> None:
    if not request_can_move(current, target):
        raise IllegalTransition(obj_label="The request", current=current, target=target)


def reservation_require_move(current: str, target: str) -> None:
    if not reservation_can_move(current, target):
        raise IllegalTransition(obj_label="The reservation", current=current, target=target)


_PRIMARY_TARGET = {"submit": R.SUBMITTED, "sign_off": R.SUBMITTED, "run_checks": R.CHECKING}
_PRIMARY_TARGET |= {"approve": R.APPROVED}


def request_require_action(action: str, current: str) -> None:
    """Refuse ``action`` on a request in state ``current`` (naming the state)."""
    if current not in REQUEST_ACTIONS[action]:
        target = _PRIMARY_TARGET.get(action) or min(REQUEST_ACTION_TARGETS[action])
        raise IllegalTransition(obj_label="The request", current=current, target=target)


def reservation_require_action(action: str, current: str) -> None:
    if current not in RESERVATION_ACTIONS[action]:
        targets = RESERVATION_ACTION_TARGETS[action] or {current}
        raise IllegalTransition(
            obj_label="The reservation", current=current, target=sorted(targets)[-1]
        )
