"""Catalog reads of the hot paths."""

from __future__ import annotations

import functools

from django.db import connection

from portal.prepared import prepared_cursor
from portal.rows import Columns
from quotas.models import CapacityPool, GpuSku, Region


@functools.cache
def _sku_region_pool_statement() -> tuple[str, tuple[Columns, Columns, Columns]]:
    parts = (Columns(GpuSku, "s"), Columns(Region, "r"), Columns(CapacityPool, "p"))
    quote = connection.ops.quote_name
    sku, region, pool = (quote(m._meta.db_table) for m in (GpuSku, Region, CapacityPool))
    sql = (
        f"SELECT {', '.join(part.sql for part in parts)} "  # noqa: S608 (names from the models)
        "FROM (SELECT 1) one "
        f"LEFT JOIN {sku} s ON s.code = %s AND s.active "
        f"LEFT JOIN {region} r ON r.code = %s AND r.active "
        f"LEFT JOIN {pool} p ON p.sku_id = s.id AND p.region_id = r.id AND p.active"
    )
    return sql, parts


def sku_region_pool_by_codes(
    *, sku_code: str, region_code: str
) -> tuple[GpuSku | None, Region | None, CapacityPool | None]:
    """The active SKU and the open region of these codes and their active pool (None for
    each not found), in one statement prepared once per connection: what
    ``GpuSku.objects.filter(active=True).get(code=...)``, the same of ``Region`` and
    ``CapacityPool.objects.filter(sku=..., region=..., active=True).first()`` give (codes and
    pools are unique)."""
    sql, parts = _sku_region_pool_statement()
    with prepared_cursor() as cursor:
        cursor.execute(sql, [sku_code, region_code])
        row = cursor.fetchone()
    found, at = [], 0
    for part in parts:
        found.append(part.load_or_none(row[at : at + len(part)]))
        at += len(part)
    sku, region, pool = found
    if pool is not None:
        pool.sku, pool.region = sku, region
    return sku, region, pool
