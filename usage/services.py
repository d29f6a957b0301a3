"""Writes of metered usage: the batch ingest (and the rollup rebuild).

``usage_ingest`` validates a whole batch before it writes anything: JSON and NDJSON row by row
as they stream into a TEMP staging table with COPY, CSV set-based (the body is copied as text,
every distinct value judged once). A bad row anywhere rejects the whole batch (nothing is
written). Then, in the same transaction, the organizations, GPU types, regions and
reservations the batch names are locked against deletion (the hourly table has no foreign-key
constraints of its own: see docs/usage.md) and, under one transaction-scoped advisory lock per
organization, ONE statement upserts the records and moves the daily and monthly rollups by the
difference from the rows it replaced. A key repeated inside a batch: the last one wins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, BinaryIO

import psycopg
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Organization
from portal.errors import ConflictError, DomainError
from quotas.models import GpuSku, Region

from .models import GPU_HOURS_DECIMALS
from .parsers import BatchFormatError, CsvCopyFeed, Row, format_for, read_rows

MAX_ERRORS = 100
DEFAULT_SOURCE = "metering"
SOURCE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,31}$")
MAX_GPU_HOURS = Decimal("99999999.9999")  # numeric(12, 4)
ADVISORY_NAMESPACE = 0x75736167  # "usag": the ingest's advisory locks, one per organization
FIELDS = ("organization", "sku", "region", "hour", "gpu_hours")
HOUR_MESSAGE = "Give the start of an hour with its UTC offset, e.g. 2026-01-31T13:00:00Z."
HOUR_CACHE_SIZE = 4096  # batches name the same hours over and over; parse each once
_MISSING = object()
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class IngestResult:
    received: int  # rows in the batch
    inserted: int  # keys that were new
    replaced: int  # keys whose GPU-hours or utilization changed
    unchanged: int  # keys sent again with the same figures
    duplicates: int = 0  # rows superseded by a later row with the same key in the batch

    def as_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "inserted": self.inserted,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "duplicates": self.duplicates,
        }


class UsageBatchRejected(DomainError):
    """At least one row is invalid: nothing of the batch was written."""

    status_code = 422
    code = "usage_batch_rejected"

    def __init__(self, *, errors: list[dict[str, Any]], error_count: int, received: int) -> None:
        first = errors[0]
        where = f"row {first['row']}" + (f" (line {first['line']})" if first.get("line") else "")
        super().__init__(
            f"The batch was rejected, nothing was written: {error_count} error(s); first at "
            f"{where}, {first['field'] or 'body'}: {first['message']}",
            error_count=error_count,
            received=received,
        )
        self.errors = errors
        self.error_count = error_count


@dataclass
class _Errors:
    items: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0

    def add(self, row: int | None, line: int | None, name: str | None, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append({"row": row, "line": line, "field": name, "message": message})


@dataclass
class _References:
    """The organizations, GPU types and regions a valid batch names (ids), and whether any
    record names a reservation: what the transaction locks against deletion."""

    organizations: set[int] = field(default_factory=set)
    skus: set[int] = field(default_factory=set)
    regions: set[int] = field(default_factory=set)
    reservations: bool = False


class _Catalog:
    """Codes, slugs and ids resolved once per batch."""

    def __init__(self) -> None:
        # Loaded up front: the connection is busy with COPY while rows are validated.
        self.skus = dict(GpuSku.objects.values_list("code", "pk"))
        self.regions = dict(Region.objects.values_list("code", "pk"))
        by_slug = dict(Organization.objects.values_list("slug", "pk"))
        self.organizations: dict[str, int] = {**by_slug, **{str(pk): pk for pk in by_slug.values()}}
        self.hours: dict[str, str | None] = {}

    def organization_id(self, value: Any) -> int | None:
        return self.organizations.get(str(value).strip())

    def hour(self, value: Any) -> str | None:
        """The UTC hour as COPY text, or None when the value is not the start of an hour."""
        key = str(value)
        parsed = self.hours.get(key, _MISSING)
        if parsed is _MISSING:
            if len(self.hours) >= HOUR_CACHE_SIZE:  # a long backfill: keep memory bounded
                self.hours.clear()
            parsed = self.hours[key] = _parse_hour(key)
        return parsed


def _parse_hour(text: str) -> str | None:
    try:
        at = datetime.fromisoformat(text.strip())
        if at.tzinfo is None:
            return None
        # Checked in UTC: 13:00+05:30 is not the start of a UTC hour.
        at = at.astimezone(UTC)
        if at.minute or at.second or at.microsecond:
            return None
    except (ValueError, OverflowError):
        return None
    # Metering of another century is a typing mistake (and would overflow date arithmetic).
    return at.isoformat() if 2000 <= at.year < 2200 else None


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):  # NDJSON/JSON numbers arrive as Decimal; a float is a client bug
        value = repr(value)
    try:
        number = Decimal(value if isinstance(value, Decimal | int) else str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _places(number: Decimal) -> int:
    exponent = number.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _check_gpu_hours(value: Any) -> tuple[Decimal | None, str | None]:
    gpu_hours = _decimal(value)
    if gpu_hours is None:
        return None, "Give a decimal number."
    if gpu_hours < 0:
        return None, "GPU-hours cannot be negative."
    if _places(gpu_hours) > GPU_HOURS_DECIMALS:
        return None, f"At most {GPU_HOURS_DECIMALS} decimal places."
    if gpu_hours > MAX_GPU_HOURS:
        return None, f"At most {MAX_GPU_HOURS} in one record."
    return gpu_hours, None


def _check_utilization(value: Any) -> tuple[Decimal | None, str | None]:
    number = _decimal(value)
    if number is None or not (0 <= number <= 1) or _places(number) > 4:
        return None, "Give a number from 0 to 1, at most 4 decimals."
    return number, None


def _check_reservation(value: Any) -> tuple[str | None, str | None]:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isascii() or not text.isdigit() or int(text) > MAX_ID:
        return None, "Give a reservation id (an integer)."
    return text, None


def _check_source(value: Any) -> tuple[str | None, str | None]:
    if not isinstance(value, str) or not SOURCE_PATTERN.fullmatch(value):
        return None, "Letters, digits and . _ : - only, at most 32 characters."
    return value, None


def _copy_row(
    row: int,
    line: int | None,
    fields: Mapping[str, Any],
    catalog: _Catalog,
    errors: _Errors,
    default_source: str,
    references: _References | None = None,
) -> str | None:
    """Validate one record; the staging line (COPY text) when it is valid, else None (the
    ids it names are added to ``references``)."""
    before = errors.count
    for name in FIELDS:
        if fields.get(name) in (None, ""):
            errors.add(row, line, name, "This field is required.")
    if errors.count != before:
        return None

    organization_id = catalog.organization_id(fields["organization"])
    if organization_id is None:
        errors.add(row, line, "organization", f"No organization {fields['organization']!r}.")
    sku_id = catalog.skus.get(str(fields["sku"]).strip())
    if sku_id is None:
        errors.add(row, line, "sku", f"No GPU type with code {fields['sku']!r}.")
    region_id = catalog.regions.get(str(fields["region"]).strip())
    if region_id is None:
        errors.add(row, line, "region", f"No region with code {fields['region']!r}.")
    hour = catalog.hour(fields["hour"])
    if hour is None:
        errors.add(row, line, "hour", HOUR_MESSAGE)

    gpu_hours, message = _check_gpu_hours(fields["gpu_hours"])
    if message:
        errors.add(row, line, "gpu_hours", message)

    utilization = fields.get("mean_utilization")
    if utilization in (None, ""):
        utilization_text = "\\N"
    else:
        number, message = _check_utilization(utilization)
        if message:
            errors.add(row, line, "mean_utilization", message)
        utilization_text = str(number)

    reservation = fields.get("reservation")
    if reservation in (None, ""):
        reservation_text = "\\N"
    else:
        reservation_text, message = _check_reservation(reservation)
        if message:
            errors.add(row, line, "reservation", message)

    source, message = _check_source(fields.get("source") or default_source)
    if message:
        errors.add(row, line, "source", message)

    if errors.count != before:
        return None
    if references is not None:
        references.organizations.add(organization_id)
        references.skus.add(sku_id)
        references.regions.add(region_id)
        references.reservations |= reservation_text != "\\N"
    return (
        f"{row}\t{line if line is not None else chr(92) + 'N'}\t{organization_id}\t{sku_id}\t"
        f"{region_id}\t{reservation_text}\t{hour}\t{source}\t{gpu_hours}\t{utilization_text}\n"
    )


STAGING_DDL = """
CREATE TEMP TABLE usage_ingest_staging (
    row_no integer NOT NULL,
    line_no integer,
    organization_id bigint,
    sku_id bigint,
    region_id bigint,
    reservation_id bigint,
    hour timestamptz,
    source varchar(32),
    gpu_hours numeric(12, 4),
    mean_utilization numeric(5, 4),
    -- CSV batches with a fault only: one bit per field at fault; see _csv_reject
    mask integer NOT NULL DEFAULT 0
) ON COMMIT DROP
"""

COPY_SQL = (
    "COPY usage_ingest_staging (row_no, line_no, organization_id, sku_id, region_id, "
    "reservation_id, hour, source, gpu_hours, mean_utilization) FROM STDIN"
)

# The rows of a batch, typed: ``{rows}`` in the statements below is either the staging table
# (JSON, NDJSON) or a SELECT over the CSV's raw text joined with the verdicts on its values
# (``_csv_rows_sql``). Both have row_no, line_no, organization_id, sku_id, region_id,
# reservation_id, hour, source, gpu_hours and mean_utilization.

# A reservation named by a record must be that organization's, of that SKU and region, and
# cover the hour.
RESERVATION_CHECK_SQL = """
SELECT s.row_no, s.line_no, s.reservation_id,
       CASE WHEN r.id IS NULL OR r.organization_id <> s.organization_id
            THEN 'No reservation ' || s.reservation_id || ' in this organization.'
            WHEN p.sku_id <> s.sku_id OR p.region_id <> s.region_id
            THEN 'Reservation ' || s.reservation_id || ' is for another GPU type or region.'
            ELSE 'Reservation ' || s.reservation_id || ' does not cover this hour.'
       END,
       count(*) OVER ()
FROM {rows} AS s
LEFT JOIN quotas_reservation r ON r.id = s.reservation_id
LEFT JOIN quotas_capacitypool p ON p.id = r.pool_id
WHERE s.reservation_id IS NOT NULL
  AND (r.id IS NULL OR r.organization_id <> s.organization_id
       OR p.sku_id <> s.sku_id OR p.region_id <> s.region_id
       OR s.hour < r.starts_at OR s.hour >= r.ends_at)
ORDER BY s.row_no
LIMIT %(limit)s
"""

# The hourly table has no foreign-key constraints (docs/usage.md): the ingest locks every row
# it references FOR KEY SHARE, which both proves the row exists now and blocks its DELETE
# until this transaction ends (the rollups' own foreign keys refuse it after that).
REFERENCES_LOCK_SQL = """
SELECT ARRAY(SELECT id FROM accounts_organization WHERE id = ANY(%(organizations)s)
             ORDER BY id FOR KEY SHARE),
       ARRAY(SELECT id FROM quotas_gpusku WHERE id = ANY(%(skus)s) ORDER BY id FOR KEY SHARE),
       ARRAY(SELECT id FROM quotas_region WHERE id = ANY(%(regions)s) ORDER BY id FOR KEY SHARE)
"""
# Before RESERVATION_CHECK_SQL, which then sees (and refuses) any reservation that is missing.
RESERVATION_LOCK_SQL = """
SELECT count(*) FROM (
    SELECT 1 FROM quotas_reservation
    WHERE id IN (SELECT reservation_id FROM {rows} AS s WHERE reservation_id IS NOT NULL)
    ORDER BY id FOR KEY SHARE) AS locked
"""

LOCK_SQL = """
SELECT pg_advisory_xact_lock(%s, organization_id)
FROM unnest(%s::integer[]) AS organization_id ORDER BY organization_id
"""

# One statement: dedupe the batch (last row wins), read the pre-image, write what changed and
# move the rollups by the difference. A series (organization, GPU type, region) with nothing
# stored from the batch's first hour on (metering that moves forward) is "fresh": its keys are
# all new, so its rows skip the pre-image probe and go in with a plain INSERT (no speculative
# insertion); other rows are upserted. Rollup keys that exist are updated (a difference can be
# negative); the rest are inserted (their difference is never negative: a replaced record
# implies its rollup rows exist). No other transaction writes these keys meanwhile: ingests of
# one organization are serialised by the advisory lock, the rebuild locks the table.
UPSERT_SQL = """
WITH src AS (
    -- In the natural key's order, which the records then go in: an organization's records of
    -- one hour land together in the table, as every reader of the table reads them.
    SELECT DISTINCT ON (organization_id, hour, sku_id, region_id, source, reservation_id)
           organization_id, sku_id, region_id, reservation_id, hour, source, gpu_hours,
           mean_utilization
    FROM {rows} AS s
    ORDER BY organization_id, hour, sku_id, region_id, source, reservation_id, row_no DESC
),
series AS MATERIALIZED (
    SELECT organization_id, sku_id, region_id,
           NOT EXISTS (
               SELECT 1 FROM usage_usagerecord u
                WHERE u.organization_id = s.organization_id AND u.sku_id = s.sku_id
                  AND u.region_id = s.region_id AND u.hour >= min(s.hour)) AS fresh
    FROM src s
    GROUP BY organization_id, sku_id, region_id
),
pre AS (
    SELECT s.*, u.gpu_hours AS old_gpu_hours, (u.id IS NOT NULL) AS existed,
           (u.id IS NOT NULL AND u.gpu_hours = s.gpu_hours
            AND u.mean_utilization IS NOT DISTINCT FROM s.mean_utilization) AS same
    FROM (
        -- A hashed lookup per row: no join whose size the planner would have to guess.
        SELECT src.*, (organization_id, sku_id, region_id) IN (
                   SELECT organization_id, sku_id, region_id FROM series WHERE fresh) AS fresh
        FROM src
        OFFSET 0
    ) s
    -- OFFSET 0 keeps the subquery apart, so "NOT s.fresh" gates the index probe per row.
    LEFT JOIN LATERAL (
        SELECT u.id, u.gpu_hours, u.mean_utilization
        FROM usage_usagerecord u
        WHERE NOT s.fresh
          AND u.organization_id = s.organization_id AND u.sku_id = s.sku_id
          AND u.region_id = s.region_id AND u.hour = s.hour AND u.source = s.source
          AND u.reservation_id IS NOT DISTINCT FROM s.reservation_id
        OFFSET 0
    ) u ON true
),
inserted AS (
    INSERT INTO usage_usagerecord (organization_id, sku_id, region_id, reservation_id, hour,
                                   source, gpu_hours, mean_utilization, received_at)
    SELECT organization_id, sku_id, region_id, reservation_id, hour, source, gpu_hours,
           mean_utilization, %(now)s
    FROM pre WHERE fresh
),
upserted AS (
    INSERT INTO usage_usagerecord (organization_id, sku_id, region_id, reservation_id, hour,
                                   source, gpu_hours, mean_utilization, received_at)
    SELECT organization_id, sku_id, region_id, reservation_id, hour, source, gpu_hours,
           mean_utilization, %(now)s
    FROM pre WHERE NOT fresh AND NOT same
    ON CONFLICT ON CONSTRAINT usage_record_natural_key DO UPDATE
       SET gpu_hours = EXCLUDED.gpu_hours, mean_utilization = EXCLUDED.mean_utilization,
           received_at = EXCLUDED.received_at
),
delta_day AS (
    SELECT organization_id, sku_id, region_id, reservation_id,
           (hour AT TIME ZONE 'UTC')::date AS day,
           sum(gpu_hours - coalesce(old_gpu_hours, 0)) AS gpu_hours,
           count(*) FILTER (WHERE NOT existed) AS records
    FROM pre WHERE NOT same
    GROUP BY 1, 2, 3, 4, 5
),
delta_month AS (
    SELECT organization_id, sku_id, region_id, reservation_id,
           date_trunc('month', day)::date AS month,
           sum(gpu_hours) AS gpu_hours, sum(records) AS records
    FROM delta_day GROUP BY 1, 2, 3, 4, 5
),
day_updated AS (
    UPDATE usage_usagedaily r
       SET gpu_hours = r.gpu_hours + d.gpu_hours, record_count = r.record_count + d.records
      FROM delta_day d
     WHERE r.organization_id = d.organization_id AND r.sku_id = d.sku_id
       AND r.region_id = d.region_id AND r.day = d.day
       AND r.reservation_id IS NOT DISTINCT FROM d.reservation_id
    RETURNING r.organization_id, r.sku_id, r.region_id, r.reservation_id, r.day
),
-- Keys the update did not find are new: a hashed lookup in the keys it returned, not an
-- anti-join with the whole rollup table (0 stands for "no reservation": ids start at 1).
day_inserted AS (
    INSERT INTO usage_usagedaily (organization_id, sku_id, region_id, reservation_id, day,
                                  gpu_hours, record_count)
    SELECT d.organization_id, d.sku_id, d.region_id, d.reservation_id, d.day, d.gpu_hours,
           d.records
    FROM delta_day d
    WHERE (d.organization_id, d.sku_id, d.region_id, d.day, coalesce(d.reservation_id, 0))
          NOT IN (SELECT organization_id, sku_id, region_id, day, coalesce(reservation_id, 0)
                  FROM day_updated)
),
month_updated AS (
    UPDATE usage_usagemonthly r
       SET gpu_hours = r.gpu_hours + d.gpu_hours, record_count = r.record_count + d.records
      FROM delta_month d
     WHERE r.organization_id = d.organization_id AND r.sku_id = d.sku_id
       AND r.region_id = d.region_id AND r.month = d.month
       AND r.reservation_id IS NOT DISTINCT FROM d.reservation_id
    RETURNING r.organization_id, r.sku_id, r.region_id, r.reservation_id, r.month
),
month_inserted AS (
    INSERT INTO usage_usagemonthly (organization_id, sku_id, region_id, reservation_id, month,
                                    gpu_hours, record_count)
    SELECT d.organization_id, d.sku_id, d.region_id, d.reservation_id, d.month, d.gpu_hours,
           d.records
    FROM delta_month d
    WHERE (d.organization_id, d.sku_id, d.region_id, d.month, coalesce(d.reservation_id, 0))
          NOT IN (SELECT organization_id, sku_id, region_id, month, coalesce(reservation_id, 0)
                  FROM month_updated)
)
SELECT count(*) FILTER (WHERE NOT existed),
       count(*) FILTER (WHERE existed AND NOT same),
       count(*) FILTER (WHERE same)
FROM pre
"""


# --- CSV: the body straight into COPY, validated set-based ----------------------------------
#
# The body goes into an all-text table as it streams (``CsvCopyFeed``: row and line number in
# front of each record). Every field is then judged once per DISTINCT value in Python, with the
# same checks as the JSON path (a batch names few organizations, GPU types, regions, hours and
# sources); GPU-hours, utilization and reservation ids in their plain form are judged in SQL,
# only other spellings go through Python. A row's validity depends
# on its values alone, so when every distinct value passes and no row lacks a required field,
# every row passes: the upsert then reads the raw rows typed through the verdicts
# (``_csv_rows_sql``), with no typed copy of the batch in between. Otherwise one
# INSERT ... SELECT marks the fields at fault per row (a bit mask) in the staging table, and
# the first rows at fault are read back and described by ``_copy_row`` itself, so the messages
# are the JSON path's to the letter.

CSV_FIELDS = (
    "organization",
    "sku",
    "region",
    "hour",
    "gpu_hours",
    "mean_utilization",
    "reservation",
    "source",
)
# Spellings PostgreSQL can take as they are (each also passes the Python check, unchanged):
# these regular expressions, judged in SQL with translate(), strpos() and length() instead,
# because matching a regular expression on every row of a batch took longer than all its
# other checks together (``tests/usage/test_ingest_csv_plain.py`` holds the two equal).
CSV_PLAIN_PATTERNS = {
    "gpu_hours": r"^[0-9]{1,8}(\.[0-9]{0,4})?$",
    "mean_utilization": r"^(0(\.[0-9]{0,4})?|1(\.0{0,4})?)$",
    "reservation": r"^[0-9]{1,18}$",
}
DIGITS = "'0123456789'"


def _plain_gpu_hours(value: str) -> str:
    return (
        f"CASE translate({value}, {DIGITS}, '') WHEN '' THEN length({value}) BETWEEN 1 AND 8 "
        f"WHEN '.' THEN strpos({value}, '.') BETWEEN 2 AND 9 "
        f"AND length({value}) - strpos({value}, '.') <= 4 ELSE false END"
    )


def _plain_utilization(value: str) -> str:
    return (
        f"CASE WHEN length({value}) > 6 THEN false WHEN {value} IN ('0', '1') THEN true "
        f"WHEN left({value}, 2) = '0.' THEN translate(substr({value}, 3), {DIGITS}, '') = '' "
        f"WHEN left({value}, 2) = '1.' THEN translate(substr({value}, 3), '0', '') = '' "
        "ELSE false END"
    )


def _plain_reservation(value: str) -> str:
    return f"(length({value}) BETWEEN 1 AND 18 AND translate({value}, {DIGITS}, '') = '')"


# The SQL that is true when a (non-NULL) value is in its plain spelling.
CSV_PLAIN = {
    "gpu_hours": _plain_gpu_hours,
    "mean_utilization": _plain_utilization,
    "reservation": _plain_reservation,
}
# mask bits: a field at fault (its index in CSV_FIELDS), or a required field missing (+ 8).
MISSING_BIT = 8
HOUR_FIELD = CSV_FIELDS.index("hour")

RAW_COPY_SQL = "COPY usage_ingest_raw FROM STDIN WITH (FORMAT csv)"
LOOKUP_DDL = """
CREATE TEMP TABLE usage_ingest_lookup (field smallint, raw text, value text) ON COMMIT DROP
"""


def _raw_column(columns: dict[str, int], name: str) -> str:
    # An empty quoted field ("") is an absent one, as in JSON and ``read_csv``.
    return f"NULLIF(c{columns[name]}, '')" if name in columns else "NULL::text"


def _csv_grouped(columns: dict[str, int]) -> tuple[str, ...]:
    """What the distinct scan groups by: the fields the header has (an absent one has no value
    to judge), and whether a row lacks a required field."""
    return (*(name for name in CSV_FIELDS if name in columns), "missing")


def _csv_distinct_sql(columns: dict[str, int]) -> str:
    """Every distinct value of each field (values in a plain spelling left out) and whether
    some row lacks a required field, in one scan."""
    values = []
    for name in CSV_FIELDS:
        if name not in columns:
            continue
        column = _raw_column(columns, name)
        if name in CSV_PLAIN:
            column = f"CASE WHEN NOT ({CSV_PLAIN[name](column)}) THEN {column} END"
        values.append(f"{column} AS {name}")
    values.append(
        f"({' OR '.join(f'{_raw_column(columns, n)} IS NULL' for n in FIELDS)}) AS missing"
    )
    names = _csv_grouped(columns)
    return (
        f"SELECT GROUPING({', '.join(names)}), {', '.join(names)} "  # noqa: S608
        f"FROM (SELECT {', '.join(values)} FROM usage_ingest_raw) AS v "
        f"GROUP BY GROUPING SETS ({', '.join(f'({name})' for name in names)})"
    )


def _csv_values_sql(columns: dict[str, int]) -> str:
    selected = ", ".join(f"{_raw_column(columns, name)} AS {name}" for name in CSV_FIELDS)
    return f"SELECT row_no, line_no, {selected} FROM usage_ingest_raw"  # noqa: S608


def _csv_rows_sql(columns: dict[str, int], judged: set[int]) -> str:
    """The rows of a CSV batch whose values all passed, typed: ids and hours through the
    verdicts on their values (a JSON object per field, ``%(verdicts_<n>)s``: a lookup in a
    constant, so no join whose size the planner would have to guess), numbers in a plain
    spelling as they are, absent optional fields as their defaults."""
    typed = {}
    for n, name in enumerate(CSV_FIELDS):
        judged_value = f"(%(verdicts_{n})s::jsonb ->> v.{name})"
        if n <= HOUR_FIELD:  # organization, GPU type, region, hour: always judged
            typed[name] = judged_value
        elif n in judged:
            typed[name] = f"coalesce({judged_value}, v.{name})"
        else:
            typed[name] = f"v.{name}"
    source = f"coalesce({typed['source']}, %(source)s)" if "source" in columns else "%(source)s"
    return f"""(
    SELECT v.row_no, v.line_no, {typed["organization"]}::bigint AS organization_id,
           {typed["sku"]}::bigint AS sku_id, {typed["region"]}::bigint AS region_id,
           {typed["reservation"]}::bigint AS reservation_id,
           {typed["hour"]}::timestamptz AS hour, {source}::varchar(32) AS source,
           {typed["gpu_hours"]}::numeric AS gpu_hours,
           {typed["mean_utilization"]}::numeric AS mean_utilization
    FROM ({_csv_values_sql(columns)}) AS v
)"""  # noqa: S608


def _csv_staging_sql(columns: dict[str, int]) -> str:
    """Raw rows joined with the verdicts on their values into the typed staging table."""
    raw = {name: f"v.{name}" for name in CSV_FIELDS}
    value = {
        name: f"l{n}.value" if name in columns else "NULL::text"
        for n, name in enumerate(CSV_FIELDS)
    }
    typed = dict(value)
    for name, plain in CSV_PLAIN.items():
        typed[name] = f"CASE WHEN {plain(raw[name])} THEN {raw[name]} ELSE {value[name]} END"
    typed["source"] = f"CASE WHEN v.source IS NULL THEN %(source)s ELSE {value['source']} END"
    missing = " + ".join(
        f"({raw[name]} IS NULL)::int * {1 << (MISSING_BIT + n)}" for n, name in enumerate(FIELDS)
    )
    faults = []
    for n, name in enumerate(CSV_FIELDS):
        fault = f"{raw[name]} IS NOT NULL AND {value[name]} IS NULL"
        if name in CSV_PLAIN:
            fault += f" AND NOT ({CSV_PLAIN[name](raw[name])})"
        faults.append(f"({fault})::int * {1 << n}")
    joins = "\n".join(
        f"LEFT JOIN usage_ingest_lookup l{n} ON l{n}.field = {n} AND l{n}.raw = v.{name}"
        for n, name in enumerate(CSV_FIELDS)
        if name in columns
    )
    # Built from this module's constants and column numbers only (never a header's text).
    return f"""
WITH v AS ({_csv_values_sql(columns)}),
staged AS (
    INSERT INTO usage_ingest_staging (row_no, line_no, organization_id, sku_id, region_id,
                                      reservation_id, hour, source, gpu_hours,
                                      mean_utilization, mask)
    SELECT v.row_no, v.line_no, {typed["organization"]}::bigint, {typed["sku"]}::bigint,
           {typed["region"]}::bigint, ({typed["reservation"]})::bigint,
           {typed["hour"]}::timestamptz, {typed["source"]},
           ({typed["gpu_hours"]})::numeric, ({typed["mean_utilization"]})::numeric,
           CASE WHEN {" OR ".join(f"{raw[name]} IS NULL" for name in FIELDS)}
                THEN {missing}
                ELSE {" + ".join(faults)} END
    FROM v
    {joins}
    RETURNING mask
)
SELECT count(*) FILTER (WHERE mask <> 0) FROM staged
"""  # noqa: S608


def _csv_verdicts(
    rows: list[tuple], catalog: _Catalog, grouped: tuple[str, ...]
) -> tuple[list[tuple[int, str, str | None]], bool]:
    """(field index, raw value, value as the staging table takes it or None when invalid) for
    each distinct value, and whether some row lacks a required field."""
    sets = len(grouped)
    verdicts = []
    missing = False
    for grouping, *values in rows:
        index = next(i for i in range(sets) if not grouping & (1 << (sets - 1 - i)))
        raw = values[index]
        name = grouped[index]
        if name == "missing":
            missing |= bool(raw)
            continue
        if raw is None:
            continue
        n = CSV_FIELDS.index(name)
        if name == "organization":
            found = catalog.organization_id(raw)
        elif name == "sku":
            found = catalog.skus.get(raw.strip())
        elif name == "region":
            found = catalog.regions.get(raw.strip())
        elif name == "hour":
            found = catalog.hour(raw)
        elif name == "gpu_hours":
            found = _check_gpu_hours(raw)[0]
        elif name == "mean_utilization":
            found = _check_utilization(raw)[0]
        elif name == "reservation":
            found = _check_reservation(raw)[0]
        else:
            found = _check_source(raw)[0]
        verdicts.append((n, raw, None if found is None else str(found)))
    return verdicts, missing


def _csv_stage(
    *,
    cursor,
    stream: BinaryIO,
    catalog: _Catalog,
    default_source: str,
    references: _References,
) -> tuple[int, str, dict[str, str]]:
    """Copy a CSV body into the raw table and judge it: the number of rows, the SQL of its
    typed rows and that SQL's parameters. Raises ``UsageBatchRejected`` when any row is bad,
    ``BatchFormatError`` for a malformed body."""
    feed = CsvCopyFeed(stream)
    if feed.header is None:
        return 0, "", {}
    columns = {name: index for index, name in enumerate(feed.header)}  # the last one wins
    cursor.execute(
        "CREATE TEMP TABLE usage_ingest_raw (row_no integer, line_no integer, "
        + ", ".join(f"c{index} text" for index in range(len(feed.header)))
        + ") ON COMMIT DROP"
    )
    try:
        with cursor.copy(RAW_COPY_SQL) as copy:
            for data in feed:
                copy.write(data)
    except psycopg.DataError as exc:
        raise _copy_format_error(exc) from None
    received = feed.rows
    if not received:
        return 0, "", {}
    cursor.execute(_csv_distinct_sql(columns))
    verdicts, missing = _csv_verdicts(cursor.fetchall(), catalog, _csv_grouped(columns))
    if missing or any(value is None for _n, _raw, value in verdicts):
        _csv_reject(
            cursor=cursor,
            columns=columns,
            verdicts=verdicts,
            catalog=catalog,
            default_source=default_source,
            received=received,
        )
    by_field: dict[int, dict[str, str]] = {n: {} for n in range(len(CSV_FIELDS))}
    for n, raw, value in verdicts:
        by_field[n][raw] = value
    kinds = (references.organizations, references.skus, references.regions)
    for n, ids in enumerate(kinds):
        ids.update(int(value) for value in by_field[n].values())
    references.reservations = "reservation" in columns
    params = {f"verdicts_{n}": json.dumps(values) for n, values in by_field.items()}
    return received, _csv_rows_sql(columns, {n for n, _raw, _value in verdicts}), params


def _csv_reject(
    *,
    cursor,
    columns: dict[str, int],
    verdicts: list[tuple[int, str, str | None]],
    catalog: _Catalog,
    default_source: str,
    received: int,
) -> None:
    """Raise ``UsageBatchRejected`` for a CSV batch with a value at fault or a field missing:
    every fault counted, the first rows at fault described by the JSON path's checks."""
    cursor.execute(LOOKUP_DDL)
    with cursor.copy("COPY usage_ingest_lookup FROM STDIN") as copy:
        for verdict in verdicts:
            copy.write_row(verdict)
    cursor.execute(STAGING_DDL)
    cursor.execute(_csv_staging_sql(columns), {"source": default_source})
    cursor.execute("SELECT mask, count(*) FROM usage_ingest_staging WHERE mask <> 0 GROUP BY mask")
    error_count = sum(mask.bit_count() * rows for mask, rows in cursor.fetchall())
    names = [name for name in CSV_FIELDS if name in columns]
    cursor.execute(
        f"SELECT row_no, line_no, {', '.join(f'c{columns[name]}' for name in names)} "  # noqa: S608
        "FROM usage_ingest_raw WHERE row_no = ANY(ARRAY("
        "SELECT row_no FROM usage_ingest_staging WHERE mask <> 0 ORDER BY row_no LIMIT %s"
        ")) ORDER BY row_no",
        [MAX_ERRORS],
    )
    errors = _Errors()
    for row, line, *values in cursor.fetchall():
        fields = {name: value for name, value in zip(names, values, strict=True) if value}
        _copy_row(row, line, fields, catalog, errors, default_source)
    raise UsageBatchRejected(
        errors=errors.items[:MAX_ERRORS], error_count=error_count, received=received
    )


def _copy_format_error(exc: psycopg.DataError) -> BatchFormatError:
    """PostgreSQL refused the CSV (bytes that are not UTF-8, a NUL byte): name the line."""
    context = exc.diag.context or ""
    found = re.search(r'line \d+: "(\d+),(\d+),', context)
    line = int(found.group(2)) if found else None
    message = exc.diag.message_primary or str(exc)
    if "encoding" in message:
        message = "The body is not UTF-8"
    where = f" (line {line})" if line else ""
    return BatchFormatError(f"{message.rstrip('.')}{where}.", line=line)


COPY_BUFFER = 256 * 1024


class _AnnouncedLengthStream:
    """A request body read up to the length it announced (Content-Length). Its end before
    that many bytes is a client that went away mid-request; what arrived may still parse as a
    whole, shorter batch, so the cut must fail the batch rather than end it."""

    def __init__(self, stream: BinaryIO, length: int) -> None:
        self.stream = stream
        self.length = length
        self.received = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.received += len(data)
        if not data and size != 0 and self.received < self.length:
            raise DomainError(
                f"The body ended after {self.received} of the {self.length} bytes its "
                "Content-Length announced (the connection was cut); nothing was written.",
                field="body",
            )
        return data


def _python_stage(
    *, cursor, rows: Iterator[Row], catalog: _Catalog, default_source: str, references: _References
) -> int:
    """Fill the staging table from parsed records (JSON and NDJSON), each validated in Python
    as it arrives; the number of rows. Raises ``UsageBatchRejected`` when any row is bad."""
    errors = _Errors()
    received = 0
    cursor.execute(STAGING_DDL)
    with cursor.copy(COPY_SQL) as copy:
        buffer: list[str] = []
        size = 0
        for row, line, fields in rows:
            received = row
            text = _copy_row(row, line, fields, catalog, errors, default_source, references)
            if text is None or errors.count:
                continue  # after the first error, only validate (count the rest)
            buffer.append(text)
            size += len(text)
            if size >= COPY_BUFFER:
                copy.write("".join(buffer))
                buffer.clear()
                size = 0
        if buffer and not errors.count:
            copy.write("".join(buffer))
    if errors.count:
        raise UsageBatchRejected(errors=errors.items, error_count=errors.count, received=received)
    return received


def _lock_references(*, cursor, references: _References, catalog: _Catalog) -> None:
    """Lock what the batch names FOR KEY SHARE: each one exists now and stays until commit.
    The catalog was read before this transaction began; what went in between is refused."""
    cursor.execute(
        REFERENCES_LOCK_SQL,
        {
            "organizations": sorted(references.organizations),
            "skus": sorted(references.skus),
            "regions": sorted(references.regions),
        },
    )
    found = cursor.fetchone()
    kinds = (
        ("organization", references.organizations, catalog.organizations, "organization"),
        ("sku", references.skus, catalog.skus, "GPU type"),
        ("region", references.regions, catalog.regions, "region"),
    )
    for (name, wanted, by_code, label), present in zip(kinds, found, strict=True):
        gone = wanted - set(present)
        if gone:
            codes = sorted(code for code, pk in by_code.items() if pk in gone and code != str(pk))
            raise ConflictError(
                f"The {label} {codes[0]!r} was deleted while the batch was read; nothing was "
                "written.",
                field=name,
            )


def usage_ingest(
    *,
    stream: BinaryIO,
    content_type: str,
    source_label: str | None = None,
    length: int | None = None,
) -> IngestResult:
    """Validate and store a batch of hourly usage records (JSON array, NDJSON or CSV).

    Fields of a record: ``organization`` (slug or id), ``sku`` (code), ``region`` (code),
    ``hour`` (ISO 8601 with offset, on the hour), ``gpu_hours`` (>= 0, at most 4 decimals),
    optional ``reservation`` (id), ``mean_utilization`` (0..1) and ``source`` (defaults to
    ``source_label``, else "metering"). Raises ``UsageBatchRejected`` (nothing written) when any
    row is invalid, ``DomainError`` when the body is not a batch or ends before ``length``
    bytes (the Content-Length of an HTTP body), ``ConflictError`` when something it names was
    deleted while it was read.
    """
    if length is not None:
        stream = _AnnouncedLengthStream(stream, length)
    fmt = format_for(content_type)
    if fmt is None:
        raise DomainError(
            "Send application/json (an array), application/x-ndjson or text/csv.",
            field="content_type",
        )
    default_source = source_label or DEFAULT_SOURCE
    if not SOURCE_PATTERN.match(default_source):
        raise DomainError("Letters, digits and . _ : - only, at most 32.", field="source")
    catalog = _Catalog()
    references = _References()
    with transaction.atomic(), connection.cursor() as cursor:
        # The batch is sorted to drop repeated keys: in memory rather than on disk.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        try:
            if fmt == "csv":
                received, rows, params = _csv_stage(
                    cursor=cursor,
                    stream=stream,
                    catalog=catalog,
                    default_source=default_source,
                    references=references,
                )
                temporary = "usage_ingest_raw"
            else:
                received = _python_stage(
                    cursor=cursor,
                    rows=read_rows(stream, fmt),
                    catalog=catalog,
                    default_source=default_source,
                    references=references,
                )
                rows = temporary = "usage_ingest_staging"
                params = {}
        except BatchFormatError as exc:
            transaction.set_rollback(True)
            raise DomainError(exc.message, field="body", line=exc.line) from None
        except UsageBatchRejected:
            transaction.set_rollback(True)
            raise
        if not received:
            transaction.set_rollback(True)  # nothing to write; drops what the CSV path made
            return IngestResult(received=0, inserted=0, replaced=0, unchanged=0)
        params = {**params, "source": default_source, "limit": MAX_ERRORS}
        _lock_references(cursor=cursor, references=references, catalog=catalog)
        if references.reservations:
            cursor.execute(RESERVATION_LOCK_SQL.format(rows=rows), params)
            cursor.execute(RESERVATION_CHECK_SQL.format(rows=rows), params)
            bad = cursor.fetchall()
            if bad:
                errors = _Errors()
                for row, line, _reservation, message, _total in bad:
                    errors.add(row, line, "reservation", message)
                transaction.set_rollback(True)
                raise UsageBatchRejected(
                    errors=errors.items, error_count=bad[0][4], received=received
                )
        organizations = sorted(references.organizations)
        # Sorted, so two batches never deadlock.
        cursor.execute(LOCK_SQL, [ADVISORY_NAMESPACE, organizations])
        cursor.execute(UPSERT_SQL.format(rows=rows), {**params, "now": timezone.now()})
        inserted, replaced, unchanged = cursor.fetchone()
        if inserted or replaced:
            _alerts_after_ingest(organizations)
        # ON COMMIT DROP only fires at the outermost commit; a caller's transaction may ingest
        # again before that.
        cursor.execute(f"DROP TABLE {temporary}")
    return IngestResult(
        received=received,
        inserted=inserted,
        replaced=replaced,
        unchanged=unchanged,
        duplicates=received - inserted - replaced - unchanged,
    )


def _alerts_after_ingest(organization_ids: list[int]) -> None:
    """Spend and quota alerts follow usage at once, not only on the hourly scan: the contracts
    app queues their evaluation for after this transaction commits."""
    from contracts.services import alerts_after_usage_ingest  # contracts prices through usage

    alerts_after_usage_ingest(organization_ids=organization_ids)


REBUILD_SQL = [
    "LOCK TABLE usage_usagerecord IN SHARE MODE",
    "DELETE FROM usage_usagedaily",
    "DELETE FROM usage_usagemonthly",
    """
    INSERT INTO usage_usagedaily (organization_id, sku_id, region_id, reservation_id, day,
                                  gpu_hours, record_count)
    SELECT organization_id, sku_id, region_id, reservation_id, (hour AT TIME ZONE 'UTC')::date,
           sum(gpu_hours), count(*)
    FROM usage_usagerecord GROUP BY 1, 2, 3, 4, 5
    """,
    """
    INSERT INTO usage_usagemonthly (organization_id, sku_id, region_id, reservation_id, month,
                                    gpu_hours, record_count)
    SELECT organization_id, sku_id, region_id, reservation_id, date_trunc('month', day)::date,
           sum(gpu_hours), sum(record_count)
    FROM usage_usagedaily GROUP BY 1, 2, 3, 4, 5
    """,
]


def usage_rollups_rebuild() -> dict[str, int]:
    """Recompute every daily and monthly rollup from the hourly records (blocks ingest while
    it runs; readers keep reading the old rollups until it commits)."""
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in REBUILD_SQL:
            cursor.execute(statement)
        cursor.execute("SELECT count(*) FROM usage_usagedaily")
        days = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM usage_usagemonthly")
        months = cursor.fetchone()[0]
    return {"daily": days, "monthly": months}
