"""Domain errors raised by services; pages show them as messages, the API as problem details."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the domain refused the operation. ``field`` names the input at fault."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra


class ConflictError(DomainError):
    """The operation does not fit the object's current state (HTTP 409)."""

    status_code = 409
    code = "conflict"


class IllegalTransition(ConflictError):
    code = "illegal_transition"

    def __init__(self, *, obj_label: str, current: str, target: str) -> None:
        super().__init__(
            f"{obj_label} is {current.replace('_', ' ')}; it cannot move to "
            f"{target.replace('_', ' ')}.",
            current_state=current,
            target_state=target,
        )
        self.current = current
        self.target = target


class NotAllowed(DomainError):
    """The user holds no right to do this (HTTP 403)."""

    status_code = 403
    code = "permission_denied"
