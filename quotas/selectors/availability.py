"""Availability of capacity pools: how many GPUs are free, when, and where else.

The model (see ``docs/capacity.md``): a pool's installed capacity at an instant t is the sum of
its capacity changes with ``effective_at <= t`` and (``ends_at`` null or ``t < ends_at``); the
GPUs held at t are the sum of its *live* holds with ``starts_at <= t < ends_at``. A hold is live
while it is not released and it is a reservation or an offer whose ``expires_at`` is still in the
future. Free GPUs at t are capacity minus held; every window is half-open [start, end).

Free GPUs are a step function that only changes at event times (a change starting or ending, a
hold starting or ending), so every read here is one SQL statement that sweeps those events with
window functions: it folds everything before the window start into one level at the start and
keeps one level per event time inside the window. Nothing iterates hour by hour.

The availability answer (free minimum, earliest start, other regions) runs on every request
form and API call: the API's comes from one statement when the GPUs fit
(``pool_availability``), and the statements are prepared once per connection
(``portal.prepared``), since planning one cost about as much as running it.

Free figures may be negative: a capacity reduction applied in "flag" mode can leave a pool
committed beyond its capacity until the holds it flagged are moved.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection
from django.utils import timezone

from portal.errors import DomainError
from portal.prepared import prepared_cursor
from quotas.models import CapacityChange, CapacityHold, CapacityPool, GpuSku, Region

# Stands for "no end" when a window is open-ended (a permanent capacity change).
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PoolAvailability:
    """One pool and the least number of GPUs free in it over a window."""

    pool: CapacityPool
    free_min: int

    @property
    def region(self):
        return self.pool.region

    @property
    def sku(self):
        return self.pool.sku


@dataclass(frozen=True)
class PoolSummary:
    """A pool over a window: its figures at the window start, and the worst over the window."""

    pool: CapacityPool
    capacity_at_start: int
    held_at_start: int
    capacity_min: int
    held_max: int
    free_min: int

    @property
    def free_at_start(self) -> int:
        return self.capacity_at_start - self.held_at_start


@dataclass(frozen=True)
class PoolLevel:
    """A stretch [starts_at, ends_at) over which a pool's capacity and held GPUs are constant."""

    starts_at: datetime
    ends_at: datetime
    capacity: int
    held: int

    @property
    def free(self) -> int:
        return self.capacity - self.held


@dataclass(frozen=True)
class TimelineDay:
    """One UTC day of a pool: least capacity, most GPUs held and least GPUs free that day."""

    day: date
    capacity: int
    held: int
    free: int


# Events over [start, end) of the pools in {pools} (an array; %(pools)s unless the statement
# picks its pools itself): (pool_id, t, capacity delta, held delta). Events before the start are
# folded into the start by the levels query; a zero event at the start makes sure the level at
# the start exists even when nothing happened before it. The hold branches read only the index
# ``hold_live_pool_end`` (pool, end, and every column they test): see its migration.
_EVENTS_SQL = """
    SELECT c.pool_id, c.effective_at AS t, c.gpus_delta AS dcap, 0 AS dheld
      FROM {change} c
     WHERE c.pool_id = ANY({pools})
       AND c.effective_at < %(end)s
       AND (c.ends_at IS NULL OR c.ends_at > %(start)s)
    UNION ALL
    SELECT c.pool_id, c.ends_at, -c.gpus_delta, 0
      FROM {change} c
     WHERE c.pool_id = ANY({pools})
       AND c.ends_at > %(start)s AND c.ends_at < %(end)s
    UNION ALL
    SELECT h.pool_id, h.starts_at, 0, h.gpu_count
      FROM {hold} h
     WHERE h.pool_id = ANY({pools}) AND {live}
       AND h.starts_at < %(end)s AND h.ends_at > %(start)s
    UNION ALL
    SELECT h.pool_id, h.ends_at, 0, -h.gpu_count
      FROM {hold} h
     WHERE h.pool_id = ANY({pools}) AND {live}
       AND h.ends_at > %(start)s AND h.ends_at < %(end)s
    UNION ALL
    SELECT p, %(start)s, 0, 0 FROM unnest({pools}) AS p
"""

_LIVE_SQL = (
    "h.released_at IS NULL"
    " AND (h.kind = 'reservation' OR h.expires_at > %(now)s)"
    " AND h.id <> ALL(%(exclude)s::bigint[])"
)

# One row per pool and level: the level starts at t and lasts until t_next (NULL: window end).
_LEVELS_SQL = """
    WITH {prelude}events AS ({events}),
    levels AS (
        SELECT pool_id, t,
               sum(sum(dcap)) OVER w AS capacity,
               sum(sum(dheld)) OVER w AS held,
               lead(t) OVER w AS t_next
          FROM (SELECT pool_id, GREATEST(t, %(start)s) AS t, dcap, dheld FROM events) AS e
         GROUP BY pool_id, t
        WINDOW w AS (PARTITION BY pool_id ORDER BY t)
    )
"""


def _sql(query: str, *, prelude: str = "", pools: str = "%(pools)s::bigint[]") -> str:
    """``query`` (a SELECT over ``levels``) after the events and levels CTEs, themselves after
    ``prelude`` (more CTEs, each followed by a comma). The statement is built only from this
    module's constants and model table names; every value is bound."""
    events = (
        _EVENTS_SQL.replace("{live}", _LIVE_SQL)
        .replace("{pools}", pools)
        .format(change=CapacityChange._meta.db_table, hold=CapacityHold._meta.db_table)
    )
    return _LEVELS_SQL.replace("{prelude}", prelude).replace("{events}", events) + query


def _params(
    *,
    pool_ids: Iterable[int],
    starts_at: datetime,
    ends_at: datetime,
    exclude_hold_ids: Iterable[int] = (),
    **extra: object,
) -> dict[str, object]:
    return {
        "pools": list(pool_ids),
        "start": starts_at,
        "end": ends_at,
        "now": timezone.now(),
        "exclude": [int(pk) for pk in exclude_hold_ids],
        **extra,
    }


def _pool_id(pool: CapacityPool | int) -> int:
    return pool if isinstance(pool, int) else pool.pk


def _check_window(starts_at: datetime, ends_at: datetime) -> None:
    if ends_at <= starts_at:
        raise DomainError("The end must be after the start.", field="ends_at")


def pool_free_min_by_pool(
    *,
    pools: Iterable[CapacityPool | int],
    starts_at: datetime,
    ends_at: datetime,
    exclude_hold_ids: Iterable[int] = (),
) -> dict[int, int]:
    """Least free GPUs over [starts_at, ends_at) for several pools in one query, by pool id."""
    _check_window(starts_at, ends_at)
    pool_ids = [_pool_id(pool) for pool in pools]
    if not pool_ids:
        return {}
    sql = _sql("SELECT pool_id, min(capacity - held) FROM levels GROUP BY pool_id")
    params = _params(
        pool_ids=pool_ids,
        starts_at=starts_at,
        ends_at=ends_at,
        exclude_hold_ids=exclude_hold_ids,
    )
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return {pool_id: int(free) for pool_id, free in cursor.fetchall()}


def pool_free_min(
    *,
    pool: CapacityPool | int,
    starts_at: datetime,
    ends_at: datetime,
    exclude_hold_ids: Iterable[int] = (),
) -> int:
    """Least free GPUs (installed capacity minus live holds) at any instant of [starts_at,
    ends_at). Holds listed in ``exclude_hold_ids`` are ignored (to check a hold's own resize)."""
    return pool_free_min_by_pool(
        pools=[pool], starts_at=starts_at, ends_at=ends_at, exclude_hold_ids=exclude_hold_ids
    )[_pool_id(pool)]


def pool_fits(
    *,
    pool: CapacityPool | int,
    gpu_count: int,
    starts_at: datetime,
    ends_at: datetime,
    exclude_hold_ids: Iterable[int] = (),
) -> bool:
    """Whether ``gpu_count`` more GPUs can be held over the whole of [starts_at, ends_at)."""
    free = pool_free_min(
        pool=pool, starts_at=starts_at, ends_at=ends_at, exclude_hold_ids=exclude_hold_ids
    )
    return free >= gpu_count


def pool_levels(
    *,
    pool: CapacityPool | int,
    starts_at: datetime,
    ends_at: datetime,
    exclude_hold_ids: Iterable[int] = (),
) -> list[PoolLevel]:
    """The pool's capacity and held GPUs over [starts_at, ends_at) as constant stretches."""
    _check_window(starts_at, ends_at)
    sql = _sql("SELECT t, t_next, capacity, held FROM levels ORDER BY t")
    params = _params(
        pool_ids=[_pool_id(pool)],
        starts_at=starts_at,
        ends_at=ends_at,
        exclude_hold_ids=exclude_hold_ids,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            PoolLevel(starts_at=t, ends_at=t_next or ends_at, capacity=int(cap), held=int(held))
            for t, t_next, cap, held in cursor.fetchall()
        ]


def pool_earliest_start(
    *,
    pool: CapacityPool | int,
    gpu_count: int,
    duration: timedelta,
    not_before: datetime,
    horizon: timedelta,
    free_min: int | None = None,
) -> datetime | None:
    """The earliest start in [not_before, not_before + horizon) at which ``gpu_count`` GPUs fit
    for ``duration``, or None when there is none in that horizon. ``free_min``, when the caller
    has read it already, is the pool's free minimum over [not_before, not_before + duration):
    the search's first question, which is then not asked again.

    The answer is exact, not rounded to the hour: the earliest fitting start is always either
    ``not_before`` or an instant where the free figure changes (moving a fitting start that is
    neither a little earlier keeps it fitting), so those are the only candidates. One query
    tests the candidates of a stretch in one pass: a candidate fits when it has room and the
    next level short of GPUs starts no earlier than the candidate's end. The stretches grow
    (not_before alone, ``EARLIEST_START_STEPS``, then the horizon) so that the usual answer,
    "at once" or "soon", does not sweep a year of holds. Callers that want whole hours round
    the answer up themselves.
    """
    _check_search(gpu_count=gpu_count, duration=duration, horizon=horizon)
    # Most asks fit at once, or soon: look at not_before alone, then a month, then the whole
    # horizon. Each step is exact for the candidates it covers (it reads the levels up to its
    # last candidate plus the duration), so the first step with an answer has the earliest.
    # not_before alone fits exactly when the free minimum over its window has room: the
    # free-minimum statement says so for about two thirds of the candidate search's server time.
    if free_min is None:
        free_min = pool_free_min(pool=pool, starts_at=not_before, ends_at=not_before + duration)
    if free_min >= gpu_count:
        return not_before
    final_end = not_before + horizon
    if final_end <= not_before + _INSTANT:
        return None  # not_before was the only candidate
    for step in EARLIEST_START_STEPS:
        horizon_end = min(not_before + step, final_end)
        found = _earliest_start_before(
            pool=pool,
            gpu_count=gpu_count,
            duration=duration,
            not_before=not_before,
            horizon_end=horizon_end,
        )
        if found is not None or horizon_end == final_end:
            return found
    return _earliest_start_before(
        pool=pool,
        gpu_count=gpu_count,
        duration=duration,
        not_before=not_before,
        horizon_end=final_end,
    )


def _check_search(*, gpu_count: int, duration: timedelta, horizon: timedelta) -> None:
    if gpu_count <= 0:
        raise DomainError("Ask for at least one GPU.", field="gpu_count")
    if duration <= timedelta(0):
        raise DomainError("The duration must be positive.", field="duration")
    if horizon <= timedelta(0):
        raise DomainError("The search horizon must be positive.", field="horizon")


# Steps of the earliest-start search after the asked start alone: a month, then the horizon.
EARLIEST_START_STEPS = (timedelta(days=31),)
# The resolution of instants: a horizon this short holds only not_before.
_INSTANT = timedelta(microseconds=1)


def _earliest_start_before(
    *,
    pool: CapacityPool | int,
    gpu_count: int,
    duration: timedelta,
    not_before: datetime,
    horizon_end: datetime,
) -> datetime | None:
    sql = _sql(
        """
        SELECT t FROM (
            SELECT t, capacity - held AS free,
                   -- the next level that is too short of GPUs, if any
                   -- (framed from the far end so PostgreSQL aggregates incrementally)
                   min(CASE WHEN capacity - held < %(count)s THEN t END) OVER (
                       ORDER BY t DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
                   ) AS next_short
              FROM levels
        ) AS c
         WHERE t < %(horizon_end)s AND free >= %(count)s
           AND (next_short IS NULL OR next_short >= t + %(duration)s)
         ORDER BY t
         LIMIT 1
        """
    )
    params = _params(
        pool_ids=[_pool_id(pool)],
        starts_at=not_before,
        ends_at=horizon_end + duration,
        horizon_end=horizon_end,
        count=gpu_count,
        duration=duration,
    )
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


def pool_summary_list(
    *,
    starts_at: datetime,
    ends_at: datetime,
    region: Region | int | None = None,
    sku: GpuSku | int | None = None,
) -> list[PoolSummary]:
    """Every active pool (optionally of one region and/or SKU) over [starts_at, ends_at): what
    is installed and held at the start, and the least capacity, most held and least free over
    the window. For the capacity planner's overview; two queries whatever the number of pools.
    """
    _check_window(starts_at, ends_at)
    pools = CapacityPool.objects.filter(active=True).select_related("region", "sku")
    if region is not None:
        pools = pools.filter(region_id=region if isinstance(region, int) else region.pk)
    if sku is not None:
        pools = pools.filter(sku_id=sku if isinstance(sku, int) else sku.pk)
    pools = list(pools)
    if not pools:
        return []
    sql = _sql(
        """
        SELECT pool_id,
               (array_agg(capacity ORDER BY t))[1], (array_agg(held ORDER BY t))[1],
               min(capacity), max(held), min(capacity - held)
          FROM levels
         GROUP BY pool_id
        """
    )
    params = _params(pool_ids=[pool.pk for pool in pools], starts_at=starts_at, ends_at=ends_at)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        figures = {row[0]: [int(value) for value in row[1:]] for row in cursor.fetchall()}
    return [
        PoolSummary(
            pool=pool,
            capacity_at_start=figures[pool.pk][0],
            held_at_start=figures[pool.pk][1],
            capacity_min=figures[pool.pk][2],
            held_max=figures[pool.pk][3],
            free_min=figures[pool.pk][4],
        )
        for pool in pools
    ]


# The other active pools of a SKU, picked inside the statement that reads their levels: one
# round trip, and no ORM query to compile (together that was about half of the availability
# answer's time). Only the pools where the GPUs fit come back, with their region and SKU. The
# availability answer (``pool_availability``) adds the asked pool to the candidates ({ids})
# and always gets its row back ({asked}): its free minimum comes from the same sweep.
_ALTERNATIVES_PRELUDE = """
    candidates AS MATERIALIZED (
        SELECT {ids} AS ids
          FROM {pool} p
          JOIN {region} r ON r.id = p.region_id
          JOIN {sku} s ON s.id = p.sku_id
         WHERE p.sku_id = %(sku)s AND p.active AND r.active AND s.active
           AND p.id <> ALL(%(exclude_pools)s::bigint[])
    ),
"""
_ALTERNATIVES_QUERY = """
    SELECT f.pool_id, f.free, {columns}
      FROM (SELECT pool_id, min(capacity - held) AS free FROM levels GROUP BY pool_id) AS f
      JOIN {pool} p ON p.id = f.pool_id
      JOIN {region} r ON r.id = p.region_id
      JOIN {sku} s ON s.id = p.sku_id
     WHERE f.free >= %(count)s{asked}
"""
# (alias, model) of each model read with its pool, in the order of their columns in a row.
_POOL_MODELS = (("p", CapacityPool), ("r", Region), ("s", GpuSku))


@functools.cache
def _alternatives_sql(*, with_asked_pool: bool = False) -> str:
    tables = {alias: model._meta.db_table for alias, model in _POOL_MODELS}
    columns = ", ".join(
        f"{alias}.{connection.ops.quote_name(field.column)}"
        for alias, model in _POOL_MODELS
        for field in model._meta.concrete_fields
    )
    names = {"pool": tables["p"], "region": tables["r"], "sku": tables["s"]}
    return _sql(
        _ALTERNATIVES_QUERY.format(
            columns=columns,
            asked=" OR f.pool_id = %(pool)s" if with_asked_pool else "",
            **names,
        ),
        prelude=_ALTERNATIVES_PRELUDE.format(
            ids="array_agg(p.id) || %(pool)s::bigint" if with_asked_pool else "array_agg(p.id)",
            **names,
        ),
        pools="(SELECT ids FROM candidates)::bigint[]",
    )


@functools.cache
def _pool_row_layout() -> tuple[tuple[type, tuple[str, ...], tuple], ...]:
    """Per model of ``_POOL_MODELS``: the model, its field names in column order, and the
    fields whose values need converting from the database (as the ORM's compiler would)."""
    layout = []
    for _, model in _POOL_MODELS:
        fields = model._meta.concrete_fields
        converted = tuple(
            (index, field)
            for index, field in enumerate(fields)
            if field.get_db_converters(connection)
        )
        layout.append((model, tuple(field.attname for field in fields), converted))
    return tuple(layout)


def _pool_from_row(row: Sequence[object]) -> CapacityPool:
    """The pool of a row of ``_alternatives_sql()`` (its pool columns onwards), with its region
    and SKU, as ``select_related("region", "sku")`` would give it."""
    database = connection.alias
    instances = []
    position = 0
    for model, names, converted in _pool_row_layout():
        values = row[position : position + len(names)]
        position += len(names)
        if converted:
            values = list(values)
            for index, field in converted:
                for converter in field.get_db_converters(connection):
                    values[index] = converter(values[index], field, connection)
        instances.append(model.from_db(database, names, values))
    pool, region, sku = instances
    CapacityPool.region.field.set_cached_value(pool, region)
    CapacityPool.sku.field.set_cached_value(pool, sku)
    return pool


def _fitting(rows: Iterable[Sequence[object]]) -> list[PoolAvailability]:
    """The alternatives of rows of ``_alternatives_sql()``: most free first, then by region."""
    fitting = [PoolAvailability(pool=_pool_from_row(row[2:]), free_min=int(row[1])) for row in rows]
    return sorted(fitting, key=lambda a: (-a.free_min, a.pool.region.code))


def pool_alternatives(
    *,
    sku: GpuSku | int,
    gpu_count: int,
    starts_at: datetime,
    ends_at: datetime,
    exclude_pool: CapacityPool | int | None = None,
) -> list[PoolAvailability]:
    """Other active regions offering ``sku`` where ``gpu_count`` GPUs fit over the window,
    most free first (then by region code). One query whatever the number of regions."""
    _check_window(starts_at, ends_at)
    params = _params(
        pool_ids=[],
        starts_at=starts_at,
        ends_at=ends_at,
        sku=sku if isinstance(sku, int) else sku.pk,
        exclude_pools=[] if exclude_pool is None else [_pool_id(exclude_pool)],
        count=gpu_count,
    )
    with prepared_cursor() as cursor:
        cursor.execute(_alternatives_sql(), params)
        return _fitting(cursor.fetchall())


@dataclass(frozen=True)
class PoolAnswer:
    """Can ``gpu_count`` GPUs of a pool fit over a window: the availability API's answer."""

    free_min: int
    earliest_start: datetime | None
    alternatives: list[PoolAvailability]


def pool_availability(
    *,
    pool: CapacityPool,
    gpu_count: int,
    starts_at: datetime,
    ends_at: datetime,
    horizon: timedelta,
) -> PoolAnswer:
    """``pool_free_min`` over [starts_at, ends_at), ``pool_earliest_start`` from starts_at for
    the window's duration within ``horizon``, and ``pool_alternatives`` of the pool's SKU
    without the pool: the same three answers, from one statement when the GPUs fit at once.

    The pool's free minimum is read in the sweep that reads the other regions', and it is
    what the earliest-start search asks first (whether starts_at itself fits), so only when
    it is short does the search run, from its next step.
    """
    _check_window(starts_at, ends_at)
    duration = ends_at - starts_at
    _check_search(gpu_count=gpu_count, duration=duration, horizon=horizon)
    params = _params(
        pool_ids=[],
        starts_at=starts_at,
        ends_at=ends_at,
        sku=pool.sku_id,
        pool=pool.pk,
        exclude_pools=[pool.pk],
        count=gpu_count,
    )
    with prepared_cursor() as cursor:
        cursor.execute(_alternatives_sql(with_asked_pool=True), params)
        rows = cursor.fetchall()
    (free_min,) = [int(row[1]) for row in rows if row[0] == pool.pk]
    return PoolAnswer(
        free_min=free_min,
        earliest_start=pool_earliest_start(
            pool=pool,
            gpu_count=gpu_count,
            duration=duration,
            not_before=starts_at,
            horizon=horizon,
            free_min=free_min,
        ),
        alternatives=_fitting(row for row in rows if row[0] != pool.pk),
    )


def pool_capacity_at(*, pool: CapacityPool | int, at: datetime) -> int:
    """Installed GPUs of the pool at the instant ``at``."""
    return pool_levels(pool=pool, starts_at=at, ends_at=at + timedelta(microseconds=1))[0].capacity


def pool_held_at(*, pool: CapacityPool | int, at: datetime) -> int:
    """GPUs held by live holds of the pool at the instant ``at``."""
    return pool_levels(pool=pool, starts_at=at, ends_at=at + timedelta(microseconds=1))[0].held


def pool_timeline(*, pool: CapacityPool | int, start: date, end: date) -> list[TimelineDay]:
    """Capacity against held GPUs for each UTC day in [start, end), for a chart.

    Per day: the least installed capacity, the most GPUs held and the least GPUs free at any
    instant of that day (so a short maintenance window or a one-hour peak still shows).
    """
    if end <= start:
        raise DomainError("The end date must be after the start date.", field="end")
    starts_at = datetime.combine(start, time.min, tzinfo=UTC)
    ends_at = datetime.combine(end, time.min, tzinfo=UTC)
    sql = _sql(
        """,
        spans AS (
            -- each level once per UTC day it touches: levels + days rows, not levels x days
            SELECT l.capacity, l.held, d AS d0
              FROM levels l
             CROSS JOIN LATERAL generate_series(
                   date_trunc('day', l.t, 'UTC'),
                   coalesce(l.t_next, %(end)s) - interval '1 microsecond',
                   interval '1 day'
             ) AS d
        )
        SELECT (d0 AT TIME ZONE 'UTC')::date, min(capacity), max(held), min(capacity - held)
          FROM spans
         GROUP BY d0
         ORDER BY d0
        """
    )
    params = _params(pool_ids=[_pool_id(pool)], starts_at=starts_at, ends_at=ends_at)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            TimelineDay(day=day, capacity=int(cap), held=int(held), free=int(free))
            for day, cap, held, free in cursor.fetchall()
        ]
