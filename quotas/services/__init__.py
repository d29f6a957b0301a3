"""Every write of the request workflow, one function per use case (see ``docs/workflow.md``).

Import from here: ``from quotas.services import capacity_request_approve``.
"""

from .decisions import (
    capacity_request_approve,
    capacity_request_counter_offer,
    capacity_request_reject,
)
from .offers import (
    capacity_request_accept_offer,
    capacity_request_decline_offer,
    capacity_request_expire,
    capacity_request_waitlist,
    capacity_request_withdraw,
)
from .requests import (
    approval_policy_for,
    approval_policy_set,
    capacity_request_create,
    capacity_request_sign_off,
    capacity_request_submit,
    capacity_request_update,
    capacity_request_validate,
    needs_second_approval,
    request_comment_add,
    request_value,
)
from .reservations import (
    reservation_activate,
    reservation_cancel,
    reservation_complete,
    reservation_extend,
    reservation_release_early,
)
from .waitlist import waitlist_offer, waitlist_offer_for_pool

__all__ = [
    "approval_policy_for",
    "approval_policy_set",
    "capacity_request_accept_offer",
    "capacity_request_approve",
    "capacity_request_counter_offer",
    "capacity_request_create",
    "capacity_request_decline_offer",
    "capacity_request_expire",
    "capacity_request_reject",
    "capacity_request_sign_off",
    "capacity_request_submit",
    "capacity_request_update",
    "capacity_request_validate",
    "capacity_request_waitlist",
    "capacity_request_withdraw",
    "needs_second_approval",
    "request_comment_add",
    "request_value",
    "reservation_activate",
    "reservation_cancel",
    "reservation_complete",
    "reservation_extend",
    "reservation_release_early",
    "waitlist_offer",
    "waitlist_offer_for_pool",
]
