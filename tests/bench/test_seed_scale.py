import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, Sum

from accounts.models import Membership, Organization
from bench.run import Bench, arguments
from bench.seed import DEFAULT_ANCHOR, HOLDING_STATES, STATE_BUCKETS
from bench.table import Figure, results_write, table_notes, table_text
from contracts.models import Contract, ContractRate
from quotas.models import CapacityHold, CapacityPool, CapacityRequest, Reservation
from quotas.selectors.availability import pool_free_min
from usage.models import UsageDaily, UsageMonthly, UsageRecord

TINY = {
    "orgs": 6,
    "regions": 3,
    "skus": 4,
    "requests": 3000,
    "usage_rows": 20_000,
    "hot_pool_reservations": 400,
}


@pytest.fixture
def tiny_scale(db):
    out = StringIO()
    call_command("seed_scale", stdout=out, **TINY)
    return out.getvalue()


def test_seed_scale_makes_the_sizes_asked_for(tiny_scale):
    assert Organization.objects.count() == 6
    assert Membership.all_objects.count() == 6
    assert CapacityPool.objects.count() == 12
    assert CapacityRequest.all_objects.count() == 3000
    assert UsageRecord.all_objects.count() == 20_000
    assert Contract.all_objects.filter(status="active").count() == 6
    assert ContractRate.objects.count() == 6 * 4
    assert CapacityHold.all_objects.filter(pool_id=1).count() == 400


def test_seed_scale_covers_every_request_state_with_holds_where_they_hold(tiny_scale):
    states = set(CapacityRequest.all_objects.values_list("state", flat=True))
    assert states == {state for _, state in STATE_BUCKETS}
    holding = CapacityRequest.all_objects.filter(state__in=HOLDING_STATES).count()
    assert CapacityHold.all_objects.count() == holding
    booked = CapacityRequest.all_objects.filter(state__in=["approved", "cancelled"])
    assert Reservation.all_objects.count() == booked.count()
    for reservation in Reservation.all_objects.select_related("hold", "request")[:200]:
        hold = reservation.hold
        assert (hold.pool_id, hold.gpu_count) == (reservation.pool_id, reservation.gpu_count)
        assert (hold.starts_at, hold.ends_at) == (reservation.starts_at, reservation.ends_at)
        assert reservation.request.pool_id == reservation.pool_id
        assert (hold.released_at is not None) == (reservation.state == "cancelled")
    assert set(Reservation.all_objects.values_list("state", flat=True)) == {
        "scheduled",
        "active",
        "completed",
        "cancelled",
    }


def test_seed_scale_never_holds_a_pool_beyond_its_capacity(tiny_scale):
    anchor = datetime.combine(DEFAULT_ANCHOR, datetime.min.time(), UTC)
    for pool in CapacityPool.objects.all():
        free = pool_free_min(
            pool=pool, starts_at=anchor - timedelta(days=400), ends_at=anchor + timedelta(days=200)
        )
        assert free >= 0, pool.pk
    hot_free = pool_free_min(pool=1, starts_at=anchor, ends_at=anchor + timedelta(hours=1))
    assert hot_free < 8192  # the hot pool is busy at the anchor


def test_seed_scale_rollups_equal_the_hourly_sums(tiny_scale):
    def by_day():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT organization_id, sku_id, region_id, (hour AT TIME ZONE 'UTC')::date, "
                "sum(gpu_hours), count(*) FROM usage_usagerecord GROUP BY 1, 2, 3, 4"
            )
            return {tuple(row[:4]): (row[4], row[5]) for row in cursor.fetchall()}

    daily = {
        (row.organization_id, row.sku_id, row.region_id, row.day): (
            row.gpu_hours,
            row.record_count,
        )
        for row in UsageDaily.all_objects.all()
    }
    assert daily == by_day()
    monthly = UsageMonthly.all_objects.aggregate(hours=Sum("gpu_hours"), n=Sum("record_count"))
    raw = UsageRecord.all_objects.aggregate(hours=Sum("gpu_hours"), n=Count("id"))
    assert (monthly["hours"], monthly["n"]) == (raw["hours"], raw["n"])
    assert all(row.month.day == 1 for row in UsageMonthly.all_objects.all())


def test_seed_scale_is_deterministic_and_reused_at_the_same_sizes(tiny_scale):
    first = list(UsageRecord.all_objects.order_by("id").values_list("gpu_hours", "hour")[:500])
    out = StringIO()
    call_command("seed_scale", stdout=out, **TINY)
    assert "reusing" in out.getvalue()
    call_command("seed_scale", "--force", stdout=StringIO(), **TINY)
    again = list(UsageRecord.all_objects.order_by("id").values_list("gpu_hours", "hour")[:500])
    assert again == first


def test_seed_scale_refuses_a_database_not_dedicated_to_it(db, monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "NAME", "portal")
    with pytest.raises(CommandError, match="not a dedicated one"):
        call_command("seed_scale", stdout=StringIO(), **TINY)


def test_bench_table_from_a_small_run(tiny_scale, tmp_path):
    bench = Bench(arguments(["--quick"]), env={}, run_dir=tmp_path)
    bench.anchor = DEFAULT_ANCHOR
    bench.figure_availability()
    bench.figure_fleet()
    availability, fleet = bench.figures
    assert availability.value > 0 and availability.reference > 0
    assert "400 holds" in availability.name
    assert fleet.value > 0 and fleet.reference > 0
    assert fleet.ratio == pytest.approx(fleet.value / fleet.reference)

    text = table_text(bench.figures)
    lines = text.splitlines()
    assert lines[0].startswith("| figure") and len(lines) == 4
    assert "R3 raw hourly aggregate" in text and f"{fleet.ratio:.2f}x" in text
    assert table_notes(bench.figures).startswith(f"- {availability.name}: free minimum")

    path = results_write(figures=bench.figures, meta={"sizes": TINY}, path=tmp_path / "r.json")
    written = json.loads(path.read_text())
    assert [f["name"] for f in written["figures"]] == [availability.name, fleet.name]
    assert written["figures"][1]["ratio"] == pytest.approx(fleet.ratio)


def test_figure_verdicts_follow_their_targets():
    assert Figure("rps", 40, "req/s", "R0", 100, min_ratio=0.3).met is True
    assert Figure("rps", 20, "req/s", "R0", 100, min_ratio=0.3).met is False
    assert Figure("p99", 61, "ms", max_value=60).met is False
    assert Figure("rss", 300, "MiB", "idle", 100, max_ratio=2).met is False
    assert Figure("not measured", None, "ms", max_value=60).met is None
    assert "| -" in table_text([Figure("not measured", None, "ms", max_value=60)])
