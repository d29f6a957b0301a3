from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.errors import DomainError
from usage.models import UsageDaily, UsageMonthly, UsageRecord
from usage.services import UsageBatchRejected, usage_rollups_rebuild

from .conftest import ENCODERS, JAN, hours, ingest, record, rollups_match_raw, table_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(org, other_org, h100, east, a100, west):
    return org


def test_same_batch_twice_changes_nothing(catalog):
    batch = [record(hour=h, gpu_hours="7.25") for h in hours(JAN, 48)]
    first = ingest(batch)
    assert (first.inserted, first.replaced, first.unchanged) == (48, 0, 0)
    before = table_state()

    again = ingest(batch)

    assert (again.received, again.inserted, again.replaced, again.unchanged) == (48, 0, 0, 48)
    assert table_state() == before
    assert UsageDaily.objects.for_organization(catalog).get(day=JAN.date()).gpu_hours == Decimal(
        "174.0000"
    )


def test_resent_record_replaces_and_rollups_move_by_the_difference(catalog):
    ingest([record(hour=JAN, gpu_hours="8"), record(hour=JAN + timedelta(hours=1), gpu_hours="2")])

    result = ingest([record(hour=JAN, gpu_hours="3.5")])

    assert (result.inserted, result.replaced) == (0, 1)
    daily = UsageDaily.objects.for_organization(catalog).get()
    assert (daily.gpu_hours, daily.record_count) == (Decimal("5.5"), 2)
    monthly = UsageMonthly.objects.for_organization(catalog).get()
    assert (monthly.gpu_hours, monthly.record_count, monthly.month) == (
        Decimal("5.5"),
        2,
        JAN.date(),
    )


def test_correction_moves_usage_between_keys(catalog, west):
    """Documented correction: send the old key with 0 and the new key with the value."""
    ingest([record(region="us-east-1", gpu_hours="8")])

    ingest([record(region="us-east-1", gpu_hours="0"), record(region="us-west-2", gpu_hours="8")])

    by_region = dict(
        UsageDaily.objects.for_organization(catalog).values_list("region__code", "gpu_hours")
    )
    assert by_region == {"us-east-1": Decimal("0"), "us-west-2": Decimal("8")}


def test_duplicate_key_in_one_batch_last_one_wins(catalog):
    result = ingest([record(gpu_hours="1"), record(gpu_hours="2"), record(gpu_hours="3")])

    assert (result.received, result.inserted, result.duplicates) == (3, 1, 2)
    assert UsageRecord.objects.for_organization(catalog).get().gpu_hours == Decimal("3")
    assert UsageDaily.objects.for_organization(catalog).get().record_count == 1


def test_source_and_reservation_are_part_of_the_key(catalog, reservation):
    hour = reservation.starts_at
    ingest(
        [
            record(hour=hour, gpu_hours="4"),
            record(hour=hour, gpu_hours="4", source="backfill"),
            record(hour=hour, gpu_hours="4", reservation=reservation.pk),
        ]
    )
    assert UsageRecord.objects.for_organization(catalog).count() == 3
    reserved = UsageDaily.objects.for_organization(catalog).get(reservation=reservation)
    assert reserved.gpu_hours == Decimal("4")


@pytest.mark.parametrize("content_type", list(ENCODERS))
def test_one_bad_row_rejects_the_batch_and_names_row_and_field(catalog, content_type):
    batch = [record(hour=h) for h in hours(JAN, 5)]
    batch[3]["gpu_hours"] = "1.23456"

    with pytest.raises(UsageBatchRejected) as rejected:
        ingest(batch, content_type)

    assert rejected.value.error_count == 1
    error = rejected.value.errors[0]
    assert (error["row"], error["field"]) == (4, "gpu_hours")
    # NDJSON: line 4; CSV: line 5 (after the header); a JSON array names the item only.
    assert error["line"] == {"application/x-ndjson": 4, "text/csv": 5}.get(content_type)
    assert table_state() == ([], [], [])


def test_errors_are_capped_and_counted(catalog):
    batch = [record(hour=h, sku="nope") for h in hours(JAN, 150)]

    with pytest.raises(UsageBatchRejected) as rejected:
        ingest(batch)

    assert rejected.value.error_count == 150
    assert len(rejected.value.errors) == 100
    assert UsageRecord.objects.unscoped_for_staff().count() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"organization": "initech"}, "organization"),
        ({"region": "mars-1"}, "region"),
        ({"hour": "2026-01-01T00:30:00Z"}, "hour"),
        ({"hour": "2026-01-01T00:00:00"}, "hour"),  # no offset
        ({"gpu_hours": "-1"}, "gpu_hours"),
        ({"gpu_hours": "lots"}, "gpu_hours"),
        ({"mean_utilization": "1.5"}, "mean_utilization"),
        ({"reservation": "abc"}, "reservation"),
        ({"reservation": "9" * 30}, "reservation"),
        ({"hour": "0001-01-01T00:00:00+01:00"}, "hour"),
        ({"gpu_hours": "1e400"}, "gpu_hours"),
        ({"source": "has space"}, "source"),
        ({"sku": None}, "sku"),
    ],
)
def test_each_field_is_validated(catalog, change, field):
    with pytest.raises(UsageBatchRejected) as rejected:
        ingest([record(hour=JAN + timedelta(hours=1)), record(**change)])
    assert [(e["row"], e["field"]) for e in rejected.value.errors] == [(2, field)]
    assert UsageRecord.objects.unscoped_for_staff().count() == 0


@pytest.mark.parametrize("content_type", list(ENCODERS))
def test_reservation_must_be_the_organizations_and_match_sku_region_and_hour(
    catalog, reservation, other_org, a100, content_type
):
    inside = reservation.starts_at
    good = record(hour=inside, reservation=reservation.pk)
    cases = [
        record(org="globex", hour=inside, reservation=reservation.pk),
        record(sku="a100-80", hour=inside, reservation=reservation.pk),
        record(hour=reservation.ends_at, reservation=reservation.pk),
        record(hour=inside, reservation=reservation.pk + 1000),
    ]
    for bad in cases:
        with pytest.raises(UsageBatchRejected) as rejected:
            ingest([good, bad], content_type)
        assert [(e["row"], e["field"]) for e in rejected.value.errors] == [(2, "reservation")]
    assert UsageRecord.objects.unscoped_for_staff().count() == 0
    assert ingest([good], content_type).inserted == 1


def test_organization_by_id_or_slug(catalog):
    ingest([record(org=str(catalog.pk)), record(org="acme", hour=JAN + timedelta(hours=1))])
    assert UsageRecord.objects.for_organization(catalog).count() == 2


def test_malformed_body_is_refused(catalog):
    import io

    from usage.services import usage_ingest

    with pytest.raises(DomainError) as refused:
        usage_ingest(stream=io.BytesIO(b'[{"a": 1}, '), content_type="application/json")
    assert refused.value.field == "body"
    with pytest.raises(DomainError) as refused:
        usage_ingest(stream=io.BytesIO(b"{}"), content_type="application/xml")
    assert refused.value.field == "content_type"


@pytest.mark.parametrize("content_type", list(ENCODERS))
def test_formats_store_the_same_records(catalog, a100, west, content_type):
    batch = [
        record(hour=h, sku=sku, region=region, gpu_hours=f"{n}.5", mean_utilization="0.75")
        for n, h in enumerate(hours(JAN, 30))
        for sku in ("h100-sxm", "a100-80")
        for region in ("us-east-1", "us-west-2")
    ]
    ingest(batch, content_type)
    stored = sorted(
        UsageRecord.objects.for_organization(catalog).values_list(
            "sku__code", "region__code", "hour", "gpu_hours", "mean_utilization", "source"
        )
    )
    expected = sorted(
        (
            r["sku"],
            r["region"],
            JAN + timedelta(hours=n),
            Decimal(r["gpu_hours"]),
            Decimal("0.75"),
            "metering",
        )
        for r in batch
        for n in [int(r["gpu_hours"].split(".")[0])]
    )
    assert stored == expected
    # Sent again in any other format: the same records, nothing changes.
    for other in ENCODERS:
        assert ingest(batch, other).unchanged == len(batch)


def test_database_refuses_a_record_off_the_hour(catalog, h100, east):
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageRecord.all_objects.create(
            organization=catalog,
            sku=h100,
            region=east,
            hour=JAN + timedelta(minutes=30),
            gpu_hours=Decimal("1"),
        )


def test_rebuild_gives_the_same_rollups(catalog):
    ingest([record(hour=h, gpu_hours="1.5") for h in hours(JAN, 24 * 40)])
    before = table_state()
    UsageDaily.objects.unscoped_for_staff().update(gpu_hours=Decimal("99"))

    usage_rollups_rebuild()

    assert table_state()[0] == before[0]
    assert table_state()[1] == before[1]
    assert table_state()[2] == before[2]


KEYS = st.tuples(
    st.sampled_from(["acme", "globex"]),
    st.sampled_from(["h100-sxm", "a100-80"]),
    st.sampled_from(["us-east-1", "us-west-2"]),
    # Hours across a day boundary and a month boundary.
    st.sampled_from(
        [JAN - timedelta(hours=1), JAN, JAN + timedelta(hours=23), JAN + timedelta(hours=24)]
    ),
    st.sampled_from(["metering", "backfill"]),
)
BATCH = st.lists(
    st.tuples(KEYS, st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False)),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(BATCH, min_size=1, max_size=4),
    content_types=st.lists(st.sampled_from(list(ENCODERS)), min_size=2, max_size=2),
)
def test_rollups_equal_raw_sums_after_random_ingests(catalog, batches, content_types):
    """In every format (CSV is typed by another path than JSON and NDJSON)."""
    with transaction.atomic():
        for batch in batches:
            ingest(
                [
                    record(org=o, sku=s, region=r, hour=h, source=src, gpu_hours=str(v))
                    for (o, s, r, h, src), v in batch
                ],
                content_types[0],
            )
            # Re-ingesting a prefix of the same batch must not drift the rollups either.
            ingest(
                [
                    record(org=o, sku=s, region=r, hour=h, source=src, gpu_hours=str(v))
                    for (o, s, r, h, src), v in batch[: len(batch) // 2]
                ],
                content_types[1],
            )
        assert rollups_match_raw() == ([], [])
        transaction.set_rollback(True)


@pytest.mark.django_db(transaction=True)
def test_ingest_has_the_spend_alerts_of_the_organizations_evaluated(catalog, org, other_org):
    from contracts.models import SpendAlertState
    from portal.celery import app
    from tests.factories import ContractFactory

    touched = ContractFactory(organization=org)
    untouched = ContractFactory(organization=other_org)
    app.conf.task_always_eager = True
    try:
        ingest([record(hour=JAN, gpu_hours="3")])
    finally:
        app.conf.task_always_eager = False

    assert SpendAlertState.all_objects.filter(contract=touched).exists()
    assert not SpendAlertState.all_objects.filter(contract=untouched).exists()
