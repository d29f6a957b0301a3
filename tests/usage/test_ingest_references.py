"""The hourly usage table has no foreign-key constraints (docs/usage.md): what they guaranteed
must still hold. An ORM delete of anything usage names is refused (PROTECT), the database
refuses a raw delete (the rollups' foreign keys), and the ingest checks and locks every row it
names inside its own transaction."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, OperationalError, connection, connections, transaction
from django.db.models import ProtectedError

from accounts.models import Organization
from portal.errors import ConflictError
from quotas.models import GpuSku, Region
from usage import services
from usage.models import UsageDaily, UsageRecord

from ..factories import GpuSkuFactory, OrganizationFactory, RegionFactory
from .conftest import ENCODERS, JAN, ingest, record

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(org, h100, east):
    return org


def protected_records(protected: ProtectedError) -> list[UsageRecord]:
    return [obj for obj in protected.protected_objects if isinstance(obj, UsageRecord)]


def test_the_hourly_table_has_no_foreign_key_constraints_the_rollups_keep_theirs():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, count(*) FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid IN ('usage_usagerecord'::regclass, 'usage_usagedaily'::regclass, "
            "'usage_usagemonthly'::regclass) GROUP BY 1"
        )
        keys = dict(cursor.fetchall())
    assert keys == {"usage_usagedaily": 4, "usage_usagemonthly": 4}


def test_deleting_what_usage_names_through_the_orm_is_refused(catalog, h100, east):
    ingest([record(hour=JAN, gpu_hours="3")])
    stored = UsageRecord.objects.for_organization(catalog).get()

    for referenced in (h100, east, catalog):
        with pytest.raises(ProtectedError) as refused, transaction.atomic():
            referenced.delete()
        assert protected_records(refused.value) == [stored]
    assert GpuSku.objects.filter(pk=h100.pk).exists()
    assert Organization.objects.filter(pk=catalog.pk).exists()


def test_deleting_a_reservation_with_usage_through_the_orm_is_refused(catalog, reservation):
    ingest([record(hour=reservation.starts_at, reservation=reservation.pk)])

    with pytest.raises(ProtectedError) as refused, transaction.atomic():
        reservation.delete()
    assert [r.reservation_id for r in protected_records(refused.value)] == [reservation.pk]


@pytest.mark.parametrize("kind", ["organization", "sku", "region"])
def test_the_database_refuses_deleting_what_usage_names(kind):
    """Rows named by nothing but usage: only the rollups' foreign keys stand in the way."""
    organization = OrganizationFactory(slug="lone")
    sku = GpuSkuFactory(code="lone-gpu")
    region = RegionFactory(code="lone-1")
    ingest([record(org="lone", sku="lone-gpu", region="lone-1", hour=JAN)])
    target = {"organization": organization, "sku": sku, "region": region}[kind]

    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            f"DELETE FROM {target._meta.db_table} WHERE id = %s",
            [target.pk],
        )
    assert type(target).objects.filter(pk=target.pk).exists()


@pytest.mark.parametrize("content_type", list(ENCODERS))
@pytest.mark.parametrize("kind", ["organization", "sku", "region"])
def test_what_is_deleted_after_the_catalog_was_read_is_refused(
    catalog, monkeypatch, content_type, kind
):
    """The catalog is read before the transaction; a row deleted in between is caught by the
    in-transaction check, not written as a dangling id."""
    doomed = {
        "organization": lambda: OrganizationFactory(slug="doomed"),
        "sku": lambda: GpuSkuFactory(code="doomed-gpu"),
        "region": lambda: RegionFactory(code="doomed-1"),
    }[kind]()
    values = {"organization": "doomed", "sku": "doomed-gpu", "region": "doomed-1"}
    field = {"organization": "org"}.get(kind, kind)
    read_catalog = services._Catalog.__init__

    def read_then_delete(self):
        read_catalog(self)
        type(doomed).objects.filter(pk=doomed.pk).delete()

    monkeypatch.setattr(services._Catalog, "__init__", read_then_delete)

    with pytest.raises(ConflictError) as refused:
        ingest([record(hour=JAN), record(hour=JAN, **{field: values[kind]})], content_type)

    assert refused.value.field == kind
    assert repr(values[kind]) in refused.value.message
    assert not UsageRecord.objects.unscoped_for_staff().exists()
    assert not UsageDaily.objects.unscoped_for_staff().exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("content_type", ["text/csv", "application/x-ndjson"])
def test_an_ingest_in_progress_blocks_deleting_what_it_names(content_type):
    """Until the ingest commits, nothing it names can be deleted: a DELETE from another
    connection waits for it (here: gives up after its lock timeout)."""
    OrganizationFactory(slug="acme")
    sku = GpuSkuFactory(code="h100-sxm")
    RegionFactory(code="us-east-1")
    outcome: list[BaseException | None] = []

    def delete_elsewhere() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '500ms'")
                cursor.execute("DELETE FROM quotas_gpusku WHERE id = %s", [sku.pk])
            outcome.append(None)
        except OperationalError as exc:
            outcome.append(exc)
        finally:
            connections.close_all()

    with transaction.atomic():
        ingest([record(hour=JAN + timedelta(hours=n)) for n in range(3)], content_type)
        other = threading.Thread(target=delete_elsewhere)
        other.start()
        other.join()

    assert len(outcome) == 1 and isinstance(outcome[0], OperationalError)
    assert "lock timeout" in str(outcome[0])
    assert GpuSku.objects.filter(pk=sku.pk).exists()
    assert Region.objects.count() == 1
    assert UsageRecord.objects.unscoped_for_staff().count() == 3
