"""The legal moves of a contract's status: one table, enforced by the services and the admin."""

from __future__ import annotations

from portal.errors import IllegalTransition

from .models import Contract

S = Contract.Status

# from status -> statuses it may move to; expired and terminated are final.
CONTRACT_TRANSITIONS: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.ACTIVE, S.TERMINATED}),
    S.ACTIVE: frozenset({S.EXPIRED, S.TERMINATED}),
    S.EXPIRED: frozenset(),
    S.TERMINATED: frozenset(),
}


def contract_require_transition(current: str, target: str) -> None:
    if target not in CONTRACT_TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(obj_label="The contract", current=current, target=target)
