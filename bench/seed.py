# ruff: noqa: S608 (SQL built from integers and constants of this module, never from input)
"""Fleet-scale data generated inside PostgreSQL: organizations, the catalog, capacity requests in
every state with their reservations and holds, contracts, and hourly usage with its rollups.

Every value is a function of row numbers through ``mix`` (multiplicative hashing, no random
generator), so the same sizes and anchor give the same rows on every machine. Reservation and
offer holds are laid out in lanes of ``LANE_GPUS`` GPUs, each lane holding one window after the
other, with no more lanes than a pool's capacity allows: no pool is ever over capacity.

Only for a dedicated database (``portal_bench`` by default): seeding empties every portal table.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import date

from django.db import connection, transaction

MARKER_TABLE = "bench_scale_seed"
LANE_GPUS = 32
HOT_POOL_ID = 1
# Windows of held capacity run from the anchor minus USAGE_MONTHS to the anchor plus this.
FUTURE_DAYS = 180
USAGE_MONTHS = 12
# Tables migrations fill (schedules, permissions, content types) are kept.
KEPT_TABLE_PREFIXES = ("django_migrations", "django_content_type", "auth_permission", "auth_group")
KEPT_TABLE_PREFIXES += ("django_celery_beat_", MARKER_TABLE)
DEFAULT_ANCHOR = date(2026, 11, 1)

SKUS = [
    # code, name, memory, interconnect, list price per GPU-hour
    ("h100-sxm-80gb", "H100 SXM 80GB", 80, "NVLink 900 GB/s, 3.2 Tb/s InfiniBand", "2.4900"),
    ("h200-sxm-141gb", "H200 SXM 141GB", 141, "NVLink 900 GB/s, 3.2 Tb/s InfiniBand", "3.1900"),
    ("b200-sxm-192gb", "B200 SXM 192GB", 192, "NVLink 1.8 TB/s, 3.2 Tb/s InfiniBand", "4.9900"),
    ("a100-sxm-80gb", "A100 SXM 80GB", 80, "NVLink 600 GB/s, 1.6 Tb/s InfiniBand", "1.7900"),
    ("a100-pcie-40gb", "A100 PCIe 40GB", 40, "PCIe Gen4", "1.2900"),
    ("l40s-48gb", "L40S 48GB", 48, "PCIe Gen4", "0.9900"),
    ("a40-48gb", "A40 48GB", 48, "PCIe Gen4", "0.6900"),
    ("v100-sxm-32gb", "V100 SXM 32GB", 32, "NVLink 300 GB/s", "0.4900"),
]

# Request states by a hash bucket 0..99 (upper bounds, exclusive), with how they hold capacity.
STATE_BUCKETS = [
    (55, "approved"),
    (59, "cancelled"),
    (61, "counter_offered"),
    (62, "offered"),
    (70, "pending_approval"),
    (72, "pending_second_approval"),
    (75, "waitlisted"),
    (76, "submitted"),
    (77, "checking"),
    (81, "draft"),
    (83, "pending_internal_approval"),
    (91, "rejected"),
    (97, "withdrawn"),
    (100, "expired"),
]
HOLDING_STATES = ("approved", "cancelled", "counter_offered", "offered")


@dataclass(frozen=True)
class ScaleSizes:
    orgs: int = 1000
    regions: int = 20
    skus: int = 8
    requests: int = 100_000
    usage_rows: int = 20_000_000
    hot_pool_reservations: int = 10_000
    anchor: date = DEFAULT_ANCHOR

    def as_dict(self) -> dict:
        return {**asdict(self), "anchor": self.anchor.isoformat()}


def mix(expr: str, salt: int) -> str:
    """A deterministic pseudo-random non-negative integer from an integer SQL expression."""
    return f"((({expr})::bigint * 2654435761 + {salt * 40503 + 7}) % 2147483647)"


def scale_seed_marker_get() -> dict | None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} "
            "(id int PRIMARY KEY, sizes jsonb NOT NULL, seconds numeric NOT NULL, "
            "seeded_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor.execute(f"SELECT sizes, seconds FROM {MARKER_TABLE} WHERE id = 1")
        row = cursor.fetchone()
    if row is None:
        return None
    sizes = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    return {"sizes": sizes, "seconds": float(row[1])}


def _steps(sizes: ScaleSizes) -> list[tuple[str, list[str]]]:
    o, r, s, n = sizes.orgs, sizes.regions, sizes.skus, sizes.requests
    pools = r * s
    a = f"'{sizes.anchor.isoformat()}'::timestamptz"
    span_start = f"({a} - interval '{USAGE_MONTHS} months')"
    span_hours = (
        f"(extract(epoch FROM ({a} + interval '{FUTURE_DAYS} days') - {span_start}) / 3600)::int"
    )
    usage_hours = f"(extract(epoch FROM {a} - {span_start}) / 3600)::int"
    sku_rows = ", ".join(
        f"({i + 1}, '{code}', '{name}', {mem}, '{link}', {price})"
        for i, (code, name, mem, link, price) in enumerate(SKUS[:s])
    )
    extra_skus = (
        f"""INSERT INTO quotas_gpusku (id, code, name, memory_gb, interconnect, gpus_per_node,
               sold_in_whole_nodes, list_price_per_gpu_hour, active)
            SELECT g, 'sku-' || lpad(g::text, 2, '0'), 'SKU ' || g, 80, '', 8, true,
                   1 + (g % 5) * 0.5, true
            FROM generate_series({len(SKUS) + 1}, {s}) g"""
        if s > len(SKUS)
        else "SELECT 1"
    )
    state_case = " ".join(f"WHEN b < {upper} THEN '{state}'" for upper, state in STATE_BUCKETS)
    holding = ", ".join(f"'{state}'" for state in HOLDING_STATES)
    return [
        (
            "people and organizations",
            [
                f"""INSERT INTO accounts_user (id, password, is_superuser, first_name, last_name,
                       is_staff, is_active, date_joined, email, full_name, staff_role)
                    SELECT g, '!', false, '', '', false, true, {a} - interval '2 years',
                           'owner-' || lpad(g::text, 5, '0') || '@scale.example',
                           'Owner ' || g, ''
                    FROM generate_series(1, {o}) g""",
                f"""INSERT INTO accounts_user (id, password, is_superuser, first_name, last_name,
                       is_staff, is_active, date_joined, email, full_name, staff_role)
                    VALUES
                    ({o + 1}, '!', false, '', '', false, true, {a}, 'manager@scale.example',
                     'Account Manager', 'account_manager'),
                    ({o + 2}, '!', false, '', '', false, true, {a}, 'planner@scale.example',
                     'Capacity Planner', 'capacity_planner'),
                    ({o + 3}, '!', true, '', '', true, true, {a}, 'admin@scale.example',
                     'Provider Admin', '')""",
                f"""INSERT INTO accounts_organization (id, name, slug, status, account_manager_id,
                       time_zone, require_mfa, created_at)
                    SELECT g, 'Scale Org ' || lpad(g::text, 5, '0'),
                           'org-' || lpad(g::text, 5, '0'), 'active', {o + 1}, 'UTC', false,
                           {a} - interval '2 years'
                    FROM generate_series(1, {o}) g""",
                f"""INSERT INTO accounts_membership (id, role, created_at, user_id, organization_id)
                    SELECT g, 'owner', {a} - interval '2 years', g, g
                    FROM generate_series(1, {o}) g""",
            ],
        ),
        (
            "catalog and pools",
            [
                f"""INSERT INTO quotas_region (id, code, name, location, active)
                    SELECT g, 'dc-' || lpad(g::text, 2, '0'), 'Data centre ' || g, '', true
                    FROM generate_series(1, {r}) g""",
                f"""INSERT INTO quotas_gpusku (id, code, name, memory_gb, interconnect,
                       gpus_per_node, sold_in_whole_nodes, list_price_per_gpu_hour, active)
                    SELECT id, code, name, mem, link, 8, true, price, true
                    FROM (VALUES {sku_rows}) AS v(id, code, name, mem, link, price)""",
                extra_skus,
                f"""INSERT INTO quotas_capacitypool (id, active, region_id, sku_id)
                    SELECT (rg - 1) * {s} + sk, true, rg, sk
                    FROM generate_series(1, {r}) rg, generate_series(1, {s}) sk""",
                f"""INSERT INTO quotas_capacitychange (id, pool_id, effective_at, gpus_delta,
                       reason, created_at)
                    SELECT p, p, {a} - interval '3 years',
                           CASE WHEN p = {HOT_POOL_ID} THEN 8192
                                ELSE 512 * (1 + {mix("p", 1)} % 8) END,
                           'Installed', {a} - interval '3 years'
                    FROM generate_series(1, {pools}) p""",
            ],
        ),
        (
            "requests, holds and reservations",
            [
                "DROP TABLE IF EXISTS seed_request",
                f"""CREATE TEMP TABLE seed_request AS
                    SELECT g AS id, 1 + {mix("g", 2)} % {o} AS org,
                           CASE {state_case} END AS state
                    FROM generate_series(1, {n}) g,
                         LATERAL (SELECT {mix("g", 3)} % 100 AS b) bucket""",
                "ALTER TABLE seed_request ADD COLUMN rank int, ADD COLUMN pool int, "
                "ADD COLUMN idx int, ADD COLUMN starts timestamptz, ADD COLUMN ends timestamptz, "
                "ADD COLUMN gpus int",
                f"""UPDATE seed_request t SET rank = x.rank
                    FROM (SELECT id, row_number() OVER (ORDER BY id) AS rank FROM seed_request
                          WHERE state IN ({holding})) x
                    WHERE t.id = x.id""",
                # The first holders fill the hot pool, the others spread over the other pools.
                f"""UPDATE seed_request SET pool = CASE
                        WHEN rank IS NOT NULL AND rank <= {sizes.hot_pool_reservations}
                            THEN {HOT_POOL_ID}
                        ELSE 2 + {mix("id", 4)} % {max(pools - 1, 1)} END""",
                """UPDATE seed_request t SET idx = x.idx
                    FROM (SELECT id, row_number() OVER (PARTITION BY pool ORDER BY rank) - 1 AS idx
                          FROM seed_request WHERE rank IS NOT NULL) x
                    WHERE t.id = x.id""",
                # Lanes: window seq of lane (idx % lanes) starts at seq * period hours.
                f"""UPDATE seed_request t SET
                        starts = {span_start} + interval '1 hour' * ((t.idx / l.lanes) * l.period),
                        ends = {span_start} + interval '1 hour' * ((t.idx / l.lanes) * l.period
                            + greatest(1, l.period * (30 + {mix("t.id", 5)} % 70) / 100)),
                        gpus = 8 * (1 + {mix("t.id", 6)} % {LANE_GPUS // 8})
                    FROM (SELECT c.pool_id, c.gpus_delta / {LANE_GPUS} AS lanes,
                                 greatest(1, {span_hours} / greatest(1, ceil(count(*)::numeric
                                    / (c.gpus_delta / {LANE_GPUS}))::int)) AS period
                          FROM seed_request q JOIN quotas_capacitychange c ON c.pool_id = q.pool
                          WHERE q.rank IS NOT NULL GROUP BY c.pool_id, c.gpus_delta) l
                    WHERE t.pool = l.pool_id AND t.rank IS NOT NULL""",
                f"""UPDATE seed_request SET
                        starts = {a} + interval '1 day' * (2 + {mix("id", 7)} % 180),
                        gpus = 8 * (1 + {mix("id", 8)} % 8)
                    WHERE rank IS NULL""",
                f"""UPDATE seed_request SET
                        ends = starts + interval '1 day' * (1 + {mix("id", 9)} % 30)
                    WHERE rank IS NULL""",
                f"""INSERT INTO quotas_capacityhold (id, pool_id, organization_id, kind, gpu_count,
                       starts_at, ends_at, expires_at, released_at, at_risk, created_at)
                    SELECT rank, pool, org,
                           CASE WHEN state IN ('approved', 'cancelled') THEN 'reservation'
                                ELSE 'offer' END,
                           gpus, starts, ends,
                           CASE WHEN state IN ('counter_offered', 'offered')
                                THEN {a} + interval '2 days' END,
                           CASE WHEN state = 'cancelled' THEN starts - interval '1 day' END,
                           false, starts - interval '20 days'
                    FROM seed_request WHERE rank IS NOT NULL""",
                f"""INSERT INTO quotas_capacityrequest (id, organization_id, kind, state, sku_id,
                       region_id, gpu_count, starts_at, ends_at, justification,
                       waitlist_if_unavailable, requested_by_id, flagged, capacity_available,
                       decision_due_at, pool_id, decided_by_id, decided_at, decision_reason,
                       offer_kind, offer_pool_id, offer_gpu_count, offer_starts_at, offer_ends_at,
                       offer_expires_at, offer_note, offer_hold_id, quote_currency,
                       quote_rate_per_gpu_hour, quote_gpu_hours, quote_total, quote_source,
                       submitted_at, state_changed_at, version, created_at, updated_at)
                    SELECT q.id, q.org, 'reservation', q.state, p.sku_id, p.region_id, q.gpus,
                           q.starts, q.ends, 'Training run ' || q.id, q.state = 'waitlisted', q.org,
                           false, CASE WHEN q.state NOT IN ('draft', 'pending_internal_approval',
                               'submitted', 'checking') THEN q.state <> 'waitlisted' END,
                           CASE WHEN q.state IN ('pending_approval', 'pending_second_approval')
                                THEN {a} + interval '1 hour' * (1 + {mix("q.id", 10)} % 48) END,
                           CASE WHEN q.state IN ('approved', 'cancelled') THEN q.pool END,
                           CASE WHEN q.state IN ('approved', 'cancelled', 'rejected')
                                THEN {o + 1} END,
                           CASE WHEN q.state IN ('approved', 'cancelled', 'rejected')
                                THEN q.created END,
                           CASE WHEN q.state = 'rejected' THEN 'No capacity in that window.'
                                ELSE '' END,
                           CASE q.state WHEN 'counter_offered' THEN 'counter'
                                WHEN 'offered' THEN 'waitlist' ELSE '' END,
                           CASE WHEN q.state IN ('counter_offered', 'offered') THEN q.pool END,
                           CASE WHEN q.state IN ('counter_offered', 'offered') THEN q.gpus END,
                           CASE WHEN q.state IN ('counter_offered', 'offered') THEN q.starts END,
                           CASE WHEN q.state IN ('counter_offered', 'offered') THEN q.ends END,
                           CASE WHEN q.state IN ('counter_offered', 'offered')
                                THEN {a} + interval '2 days' END,
                           '',
                           CASE WHEN q.state IN ('counter_offered', 'offered') THEN q.rank END,
                           CASE WHEN q.state IN ('approved', 'cancelled') THEN 'USD' ELSE '' END,
                           CASE WHEN q.state IN ('approved', 'cancelled')
                                THEN k.list_price_per_gpu_hour END,
                           CASE WHEN q.state IN ('approved', 'cancelled') THEN q.hours END,
                           CASE WHEN q.state IN ('approved', 'cancelled')
                                THEN round(q.hours * k.list_price_per_gpu_hour, 2) END,
                           CASE WHEN q.state IN ('approved', 'cancelled') THEN 'list' ELSE '' END,
                           CASE WHEN q.state NOT IN ('draft', 'pending_internal_approval')
                                THEN q.created END,
                           q.created, 1, q.created, q.created
                    FROM (SELECT *, least(starts - interval '20 days', {a} - interval '1 day')
                                     AS created,
                                 gpus * extract(epoch FROM ends - starts)::numeric / 3600 AS hours
                          FROM seed_request) q
                    JOIN quotas_capacitypool p ON p.id = q.pool
                    JOIN quotas_gpusku k ON k.id = p.sku_id""",
                f"""INSERT INTO quotas_reservation (id, organization_id, request_id, pool_id,
                       gpu_count, starts_at, ends_at, hold_id, state, currency, rate_per_gpu_hour,
                       gpu_hours, total, price_source, activated_at, ended_at, end_reason,
                       state_changed_at, version, created_at, updated_at)
                    SELECT r.rank, r.organization_id, r.id, r.pool_id, r.gpu_count, r.starts_at,
                           r.ends_at, r.rank, r.res_state, 'USD', r.quote_rate_per_gpu_hour,
                           r.quote_gpu_hours, r.quote_total, 'list',
                           CASE WHEN r.res_state IN ('active', 'completed') THEN r.starts_at END,
                           CASE WHEN r.res_state = 'completed' THEN r.ends_at
                                WHEN r.res_state = 'cancelled' THEN r.starts_at - interval '1 day'
                                END,
                           CASE WHEN r.res_state = 'cancelled' THEN 'Plans changed.' ELSE '' END,
                           r.created_at, 1, r.created_at, r.created_at
                    FROM (SELECT c.*, s.rank,
                                 CASE WHEN c.state = 'cancelled' THEN 'cancelled'
                                      WHEN c.ends_at <= {a} THEN 'completed'
                                      WHEN c.starts_at <= {a} THEN 'active'
                                      ELSE 'scheduled' END AS res_state
                          FROM quotas_capacityrequest c JOIN seed_request s ON s.id = c.id
                          WHERE c.state IN ('approved', 'cancelled')) r""",
                "DROP TABLE seed_request",
            ],
        ),
        (
            "contracts",
            [
                f"""INSERT INTO contracts_contract (id, organization_id, number, status, term_start,
                       term_end, currency, committed_spend, payment_terms, notes, created_at)
                    SELECT g, g, 'SC-' || lpad(g::text, 5, '0'), 'active',
                           ({a} - interval '{USAGE_MONTHS} months')::date,
                           ({a} + interval '12 months')::date, 'USD',
                           100000 * (1 + {mix("g", 11)} % 50), 'Net 30', '',
                           {a} - interval '{USAGE_MONTHS} months'
                    FROM generate_series(1, {o}) g""",
                f"""INSERT INTO contracts_contractrate (id, contract_id, sku_id, region_id,
                       price_per_gpu_hour)
                    SELECT (c - 1) * {s} + k.id, c, k.id, NULL,
                           round(k.list_price_per_gpu_hour * (70 + {mix("c", 12)} % 25) / 100, 4)
                    FROM generate_series(1, {o}) c, quotas_gpusku k""",
            ],
        ),
        (
            "hourly usage",
            [
                # Series (organization, SKU, region) of consecutive hours up to the anchor.
                f"""INSERT INTO usage_usagerecord (id, organization_id, sku_id, region_id,
                       reservation_id, hour, gpu_hours, mean_utilization, source, received_at)
                    SELECT i + 1, org, 1 + (k + org) % {s}, 1 + (k * 7 + org * 3) % {r}, NULL,
                           {span_start} + interval '1 hour' * ((i % h)::int),
                           round(8 * (1 + {mix("series", 13)} % 16)
                                 * (40 + {mix("i", 14)} % 60) / 100.0, 4),
                           ({mix("i", 15)} % 10001) / 10000.0, 'metering',
                           {span_start} + interval '1 hour' * ((i % h)::int + 2)
                    FROM (SELECT i, i / h AS series, h, 1 + (i / h) % {o} AS org,
                                 (i / h) / {o} AS k
                          FROM (SELECT {usage_hours} AS h) hh,
                               generate_series(0::bigint, {sizes.usage_rows - 1}::bigint) i) x""",
            ],
        ),
        (
            "usage rollups",
            [
                """INSERT INTO usage_usagedaily (organization_id, sku_id, region_id,
                       reservation_id, day, gpu_hours, record_count)
                    SELECT organization_id, sku_id, region_id, reservation_id,
                           (hour AT TIME ZONE 'UTC')::date, sum(gpu_hours), count(*)
                    FROM usage_usagerecord
                    GROUP BY 1, 2, 3, 4, 5""",
                """INSERT INTO usage_usagemonthly (organization_id, sku_id, region_id,
                       reservation_id, month, gpu_hours, record_count)
                    SELECT organization_id, sku_id, region_id, reservation_id,
                           date_trunc('month', day)::date, sum(gpu_hours), sum(record_count)
                    FROM usage_usagedaily
                    GROUP BY 1, 2, 3, 4, 5""",
            ],
        ),
    ]


def _tables_to_empty(cursor) -> list[str]:
    cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    names = [row[0] for row in cursor.fetchall()]
    return sorted(name for name in names if not name.startswith(KEPT_TABLE_PREFIXES))


def _deferred_keys(cursor, table: str) -> tuple[list[str], list[str]]:
    """SQL to drop and to re-create the unique and foreign keys and plain indexes of a table,
    so that a bulk load builds each index once instead of row by row."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('u', 'f')",
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
        [table, table],
    )
    indexes = cursor.fetchall()
    drop = [f'ALTER TABLE {table} DROP CONSTRAINT "{name}"' for name, _ in constraints]
    drop += [f'DROP INDEX "{name}"' for name, _ in indexes]
    create = [definition for _, definition in indexes]
    create += [f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {d}' for name, d in constraints]
    return drop, create


def scale_seed(*, sizes: ScaleSizes, log=print) -> dict:
    """Empty the portal tables and generate the scale data; returns timings per step."""
    began = time.monotonic()
    timings: dict[str, float] = {}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        cursor.execute("SET LOCAL work_mem = '64MB'")
        scale_seed_marker_get()
        cursor.execute(f"DELETE FROM {MARKER_TABLE}")
        tables = _tables_to_empty(cursor)
        # Deferred foreign-key checks of earlier writes in this transaction would block TRUNCATE.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        drop, create = _deferred_keys(cursor, "usage_usagerecord")
        for statement in drop:
            cursor.execute(statement)
        for name, statements in _steps(sizes):
            started = time.monotonic()
            for statement in statements:
                cursor.execute(statement)
            if name == "hourly usage":
                for statement in create:
                    cursor.execute(statement)
            timings[name] = round(time.monotonic() - started, 1)
            log(f"  {name}: {timings[name]} s")
        for table in tables:
            cursor.execute(
                "SELECT pg_get_serial_sequence(%s, a.attname) FROM pg_attribute a "
                "WHERE a.attrelid = %s::regclass AND a.attname = 'id'",
                [table, table],
            )
            row = cursor.fetchone()
            sequence = row[0] if row else None
            if sequence:
                cursor.execute(
                    f"SELECT setval(%s, coalesce((SELECT max(id) FROM {table}), 0) + 1, false)",
                    [sequence],
                )
        seconds = round(time.monotonic() - began, 1)
        cursor.execute(
            f"INSERT INTO {MARKER_TABLE} (id, sizes, seconds) VALUES (1, %s, %s)",
            [json.dumps(sizes.as_dict()), seconds],
        )
    started = time.monotonic()
    # A freshly loaded table has no visibility map, so its index-only scans (the inbox's
    # count, say) still read every heap page; in production autovacuum has long set it.
    # VACUUM cannot run inside a transaction (the seed's tests run in one): ANALYZE there.
    maintenance = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"{maintenance} {table}")
    timings["analyze"] = round(time.monotonic() - started, 1)
    timings["total"] = round(time.monotonic() - began, 1)
    return timings
