"""Every write to capacity: holds and capacity changes, each under the pool lock.

The invariant (``docs/capacity.md``): for every pool and every instant, the GPUs held by live
holds never exceed the installed capacity, whatever the concurrency. Each service here first
locks the pool row with ``SELECT ... FOR UPDATE`` (transaction-scoped, so it works behind a
transaction pooler, unlike a session advisory lock), then checks, then writes, then records the
audit event, all in one transaction. Two writers on one pool therefore check one after the
other, and the second sees the first's hold. Called inside a caller's transaction (approval
and its hold are one transaction), the lock is held until that outer transaction ends.

Lock order: the pool row first, then the hold row. Callers that lock rows of their own (a
capacity request) lock them before calling in here, never after.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from accounts.models import Organization
from accounts.services import audit_record
from portal.errors import ConflictError, DomainError

from .models import CapacityChange, CapacityHold, CapacityPool
from .selectors.availability import FAR_FUTURE, pool_free_min, pool_levels
from .signals import capacity_freed, holds_at_risk

# Far above any pool a GPU cloud installs, far below the 32-bit columns that store counts: a
# larger figure is a typo, refused on its field instead of failing at the database.
GPU_COUNT_MAX = 1_000_000

if TYPE_CHECKING:
    from accounts.models import User


class InsufficientCapacity(ConflictError):
    """The pool cannot hold the GPUs asked for over the whole window; ``free`` says how many
    it can."""

    code = "insufficient_capacity"

    def __init__(self, message: str, *, free: int, field: str | None = "gpu_count") -> None:
        super().__init__(message, field=field, free=free)
        self.free = free


class ChangeMode:
    """What a capacity reduction does to the holds it would leave without GPUs."""

    REFUSE = "refuse"
    FLAG = "flag"
    ALL = (REFUSE, FLAG)


# --- helpers ---------------------------------------------------------------------------------
def _lock_pool(pool: CapacityPool | int) -> CapacityPool:
    pool_id = pool if isinstance(pool, int) else pool.pk
    # of=("self",): lock only the pool row, not the region and SKU rows joined for messages.
    return (
        CapacityPool.objects.select_for_update(of=("self",))
        .select_related("region", "sku")
        .get(pk=pool_id)
    )


def _lock_hold(hold: CapacityHold) -> tuple[CapacityPool, CapacityHold]:
    pool = _lock_pool(hold.pool_id)
    locked = (
        CapacityHold.objects.for_organization(hold.organization_id)
        .select_for_update()
        .get(pk=hold.pk)
    )
    return pool, locked


def _send_on_commit(signal, sender, **kwargs) -> None:
    # robust: a failing receiver (say, a broker outage) must not turn saved work into an error.
    transaction.on_commit(
        lambda: signal.send_robust(sender=sender, **kwargs),
        robust=True,
    )


def _window_label(starts_at: datetime, ends_at: datetime) -> str:
    return f"[{starts_at:%Y-%m-%d %H:%M}, {ends_at:%Y-%m-%d %H:%M}) UTC"


def _validate_count(pool: CapacityPool, gpu_count: int) -> None:
    if not isinstance(gpu_count, int) or isinstance(gpu_count, bool) or gpu_count <= 0:
        raise DomainError("Hold at least one GPU.", field="gpu_count")
    sku = pool.sku
    if sku.sold_in_whole_nodes and gpu_count % sku.gpus_per_node:
        raise DomainError(
            f"{sku.name} comes in whole nodes of {sku.gpus_per_node} GPUs; "
            f"{gpu_count} is not a multiple of {sku.gpus_per_node}.",
            field="gpu_count",
        )


def _validate_window(starts_at: datetime, ends_at: datetime) -> None:
    if ends_at <= starts_at:
        raise DomainError("The end must be after the start.", field="ends_at")


def _require_fit(
    *,
    pool: CapacityPool,
    gpu_count: int,
    starts_at: datetime,
    ends_at: datetime,
    exclude_hold_ids: tuple[int, ...] = (),
) -> None:
    free = pool_free_min(
        pool=pool, starts_at=starts_at, ends_at=ends_at, exclude_hold_ids=exclude_hold_ids
    )
    if free < gpu_count:
        raise InsufficientCapacity(
            f"Only {max(free, 0)} {pool.sku.name} GPUs are free in {pool.region.code} over "
            f"{_window_label(starts_at, ends_at)}; {gpu_count} were asked for.",
            free=free,
        )


def _is_lapsed(hold: CapacityHold, now: datetime) -> bool:
    return hold.kind == CapacityHold.Kind.OFFER and hold.expires_at <= now


def _hold_snapshot(hold: CapacityHold) -> dict[str, object]:
    return {
        "pool": hold.pool_id,
        "kind": hold.kind,
        "gpu_count": hold.gpu_count,
        "starts_at": hold.starts_at.isoformat(),
        "ends_at": hold.ends_at.isoformat(),
        "expires_at": hold.expires_at.isoformat() if hold.expires_at else None,
    }


# --- holds -----------------------------------------------------------------------------------
@transaction.atomic
def hold_place(
    *,
    pool: CapacityPool,
    organization: Organization,
    gpu_count: int,
    starts_at: datetime,
    ends_at: datetime,
    kind: str,
    expires_at: datetime | None = None,
    actor: User | None = None,
) -> CapacityHold:
    """Hold ``gpu_count`` GPUs of ``pool`` for ``organization`` over [starts_at, ends_at).

    A reservation holds until released; an offer also lapses at ``expires_at``. Raises
    ``InsufficientCapacity`` (with the free figure) when the GPUs are not free over the whole
    window, ``DomainError`` naming the field for bad input.
    """
    if kind not in CapacityHold.Kind.values:
        raise DomainError(
            f"Unknown hold kind {kind!r}; use one of {', '.join(CapacityHold.Kind.values)}.",
            field="kind",
        )
    now = timezone.now()
    if kind == CapacityHold.Kind.OFFER and (expires_at is None or expires_at <= now):
        raise DomainError("An offer needs an expiry time in the future.", field="expires_at")
    if kind == CapacityHold.Kind.RESERVATION and expires_at is not None:
        raise DomainError(
            "Only offers expire; a reservation holds until released.", field="expires_at"
        )
    _validate_window(starts_at, ends_at)
    pool = _lock_pool(pool)
    if not (pool.active and pool.region.active and pool.sku.active):
        raise DomainError(f"{pool} is not open for new holds.", field="pool")
    _validate_count(pool, gpu_count)
    _require_fit(pool=pool, gpu_count=gpu_count, starts_at=starts_at, ends_at=ends_at)
    hold = CapacityHold.all_objects.create(
        pool=pool,
        organization=organization,
        kind=kind,
        gpu_count=gpu_count,
        starts_at=starts_at,
        ends_at=ends_at,
        expires_at=expires_at,
    )
    audit_record(
        organization=organization,
        actor=actor,
        action="capacity.hold_placed",
        target=hold,
        changes=_hold_snapshot(hold),
    )
    return hold


@transaction.atomic
def hold_release(
    *, hold: CapacityHold, at: datetime | None = None, actor: User | None = None
) -> CapacityHold:
    """Release the hold: from then on it holds nothing. Releasing a released hold is a no-op.

    To end a running reservation early while keeping the part already used on record, shrink
    it with ``hold_resize(ends_at=...)`` instead.
    """
    pool, hold = _lock_hold(hold)
    if hold.released_at is not None:
        return hold
    hold.released_at = at or timezone.now()
    hold.save(update_fields=["released_at"])
    audit_record(
        organization=hold.organization,
        actor=actor,
        action="capacity.hold_released",
        target=hold,
        changes={"released_at": hold.released_at.isoformat()},
    )
    _clear_backed_risks(pool=pool, actor=actor)
    _send_on_commit(capacity_freed, CapacityPool, pool_id=pool.pk)
    return hold


@transaction.atomic
def hold_confirm_offer(*, hold: CapacityHold, actor: User | None = None) -> CapacityHold:
    """Turn a live offer into a reservation (the tenant accepted it). A confirmed offer is
    returned unchanged; a released or lapsed one is refused, its GPUs may be gone."""
    _pool, hold = _lock_hold(hold)
    if hold.released_at is not None:
        raise ConflictError("This offer was withdrawn; its GPUs are no longer held.", field="hold")
    if hold.kind == CapacityHold.Kind.RESERVATION:
        return hold
    now = timezone.now()
    if _is_lapsed(hold, now):
        raise ConflictError(
            f"This offer lapsed at {hold.expires_at:%Y-%m-%d %H:%M} UTC; its GPUs are no "
            "longer held.",
            field="hold",
        )
    expired_at = hold.expires_at
    hold.kind = CapacityHold.Kind.RESERVATION
    hold.expires_at = None
    hold.save(update_fields=["kind", "expires_at"])
    audit_record(
        organization=hold.organization,
        actor=actor,
        action="capacity.offer_confirmed",
        target=hold,
        changes={"kind": ["offer", "reservation"], "expires_at": [expired_at.isoformat(), None]},
    )
    return hold


@transaction.atomic
def hold_resize(
    *,
    hold: CapacityHold,
    gpu_count: int | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    actor: User | None = None,
) -> CapacityHold:
    """Change a live hold's count or window (an extension, an early end, fewer GPUs).

    The new hold is checked against the pool without the hold itself, unless it lies wholly
    inside the old one (a shrink needs no GPUs, even in an over-committed pool). Anything it
    gives back sends ``capacity_freed``.
    """
    pool, hold = _lock_hold(hold)
    if hold.released_at is not None:
        raise ConflictError("This hold was released; it cannot be resized.", field="hold")
    if _is_lapsed(hold, timezone.now()):
        raise ConflictError("This offer lapsed; it cannot be resized.", field="hold")
    new_count = hold.gpu_count if gpu_count is None else gpu_count
    new_start = hold.starts_at if starts_at is None else starts_at
    new_end = hold.ends_at if ends_at is None else ends_at
    _validate_count(pool, new_count)
    _validate_window(new_start, new_end)
    old = _hold_snapshot(hold)
    if (new_count, new_start, new_end) == (hold.gpu_count, hold.starts_at, hold.ends_at):
        return hold
    inside = new_count <= hold.gpu_count and new_start >= hold.starts_at and new_end <= hold.ends_at
    if not inside:
        _require_fit(
            pool=pool,
            gpu_count=new_count,
            starts_at=new_start,
            ends_at=new_end,
            exclude_hold_ids=(hold.pk,),
        )
    gives_back = new_count < hold.gpu_count or new_start > hold.starts_at or new_end < hold.ends_at
    hold.gpu_count, hold.starts_at, hold.ends_at = new_count, new_start, new_end
    hold.save(update_fields=["gpu_count", "starts_at", "ends_at"])
    new = _hold_snapshot(hold)
    audit_record(
        organization=hold.organization,
        actor=actor,
        action="capacity.hold_resized",
        target=hold,
        changes={key: [old[key], new[key]] for key in new if old[key] != new[key]},
    )
    if gives_back or hold.at_risk:
        _clear_backed_risks(pool=pool, actor=actor)
    if gives_back:
        _send_on_commit(capacity_freed, CapacityPool, pool_id=pool.pk)
    return hold


# --- capacity changes ------------------------------------------------------------------------
@transaction.atomic
def capacity_change_add(
    *,
    pool: CapacityPool,
    gpus_delta: int,
    effective_at: datetime,
    ends_at: datetime | None = None,
    reason: str,
    actor: User | None,
    mode: str = ChangeMode.REFUSE,
) -> CapacityChange:
    """Add ``gpus_delta`` GPUs to the pool from ``effective_at`` (until ``ends_at``, if given:
    a maintenance window is a negative delta with an end).

    A reduction below what is already held is refused in ``refuse`` mode; in ``flag`` mode it
    is applied and the holds it leaves without GPUs are flagged ``at_risk`` (newest first, only
    as many as needed to cover the shortfall) and announced with ``holds_at_risk`` on commit.
    An increase announces ``capacity_freed``.
    """
    if mode not in ChangeMode.ALL:
        raise DomainError(
            f"Unknown mode {mode!r}; use one of {', '.join(ChangeMode.ALL)}.", field="mode"
        )
    if not isinstance(gpus_delta, int) or isinstance(gpus_delta, bool) or gpus_delta == 0:
        raise DomainError("The change must add or remove at least one GPU.", field="gpus_delta")
    if abs(gpus_delta) > GPU_COUNT_MAX:
        raise DomainError(
            f"A change adds or removes at most {GPU_COUNT_MAX:,} GPUs.", field="gpus_delta"
        )
    if ends_at is not None and ends_at <= effective_at:
        raise DomainError("The end must be after the effective time.", field="ends_at")
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say why the capacity changes.", field="reason")
    pool = _lock_pool(pool)
    window_end = ends_at or FAR_FUTURE
    broken: list[CapacityHold] = []
    if gpus_delta < 0:
        free = pool_free_min(pool=pool, starts_at=effective_at, ends_at=window_end)
        if free + gpus_delta < 0:
            if mode == ChangeMode.REFUSE:
                raise InsufficientCapacity(
                    f"Only {max(free, 0)} {pool.sku.name} GPUs are free in {pool.region.code} "
                    f"from {effective_at:%Y-%m-%d %H:%M} UTC"
                    + (f" to {ends_at:%Y-%m-%d %H:%M} UTC" if ends_at else "")
                    + f"; removing {-gpus_delta} would break reservations already held.",
                    free=free,
                    field="gpus_delta",
                )
            broken = _holds_left_short(
                pool=pool, gpus_delta=gpus_delta, starts_at=effective_at, ends_at=window_end
            )
    change = CapacityChange.objects.create(
        pool=pool,
        gpus_delta=gpus_delta,
        effective_at=effective_at,
        ends_at=ends_at,
        reason=reason,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    audit_record(
        organization=None,
        actor=actor,
        action="capacity.changed",
        target=change,
        changes={
            "pool": str(pool),
            "gpus_delta": gpus_delta,
            "effective_at": effective_at.isoformat(),
            "ends_at": ends_at.isoformat() if ends_at else None,
            "reason": reason,
            "mode": mode,
            "holds_at_risk": [hold.pk for hold in broken],
        },
    )
    for hold in broken:
        hold.at_risk = True
        hold.save(update_fields=["at_risk"])
        audit_record(
            organization=hold.organization,
            actor=actor,
            action="capacity.hold_at_risk",
            target=hold,
            changes={"capacity_change": change.pk, "reason": reason},
        )
    if broken:
        _send_on_commit(holds_at_risk, CapacityHold, hold_ids=[hold.pk for hold in broken])
    if gpus_delta > 0:
        _clear_backed_risks(pool=pool, actor=actor)
        _send_on_commit(capacity_freed, CapacityPool, pool_id=pool.pk)
    return change


def _holds_left_short(
    *, pool: CapacityPool, gpus_delta: int, starts_at: datetime, ends_at: datetime
) -> list[CapacityHold]:
    """The holds a reduction of ``gpus_delta`` over [starts_at, ends_at) leaves without GPUs.

    Walk the stretches where the pool would be over-committed and give up holds newest first
    (the last placed is the first at risk) until every stretch is covered again. Only the
    stretches of the window are visited, not hours.
    """
    short = [
        [level.starts_at, level.ends_at, level.free + gpus_delta]
        for level in pool_levels(pool=pool, starts_at=starts_at, ends_at=ends_at)
        if level.free + gpus_delta < 0
    ]
    if not short:
        return []
    now = timezone.now()
    candidates = (
        CapacityHold.objects.unscoped_for_staff()
        .filter(
            pool=pool,
            released_at__isnull=True,
            starts_at__lt=max(end for _, end, _ in short),
            ends_at__gt=min(start for start, _, _ in short),
        )
        .select_related("organization")
        .select_for_update(of=("self",))
        .order_by("-created_at", "-pk")
    )
    broken = []
    for hold in candidates:
        if _is_lapsed(hold, now):
            continue
        overlapping = [
            s for s in short if s[2] < 0 and hold.starts_at < s[1] and hold.ends_at > s[0]
        ]
        if not overlapping:
            continue
        broken.append(hold)
        for stretch in overlapping:
            stretch[2] += hold.gpu_count
        if all(stretch[2] >= 0 for stretch in short):
            break
    return broken


def _clear_backed_risks(*, pool: CapacityPool, actor: User | None) -> list[CapacityHold]:
    """Clear ``at_risk`` on the holds of the (locked) pool that have GPUs behind them again.

    Called when GPUs come back (capacity added, a hold released or shrunk). The oldest at-risk
    hold is considered first; a hold is backed when it fits beside every hold not at risk and
    those already cleared, so clearing one never leaves another short.
    """
    at_risk = list(
        CapacityHold.objects.unscoped_for_staff()
        .filter(pool=pool, at_risk=True, released_at__isnull=True)
        .select_related("organization")
        .order_by("created_at", "pk")
    )
    still_at_risk = {hold.pk for hold in at_risk}
    cleared = []
    for hold in at_risk:
        if (
            pool_free_min(
                pool=pool,
                starts_at=hold.starts_at,
                ends_at=hold.ends_at,
                exclude_hold_ids=tuple(still_at_risk),
            )
            < hold.gpu_count
        ):
            continue
        still_at_risk.discard(hold.pk)
        hold.at_risk = False
        hold.save(update_fields=["at_risk"])
        audit_record(
            organization=hold.organization,
            actor=actor,
            action="capacity.hold_backed",
            target=hold,
            changes={"at_risk": [True, False]},
        )
        cleared.append(hold)
    return cleared
