"""portal.rows prepares a value itself only where the field's ``get_db_prep_save`` provably
returns it unchanged (or, for integer columns, in psycopg's sized integer): every value
``_prepared`` makes is the one ``get_db_prep_save(pre_save(...))`` makes, of the same type, on
random values of every field type the models insert through it, including values of the wrong
type that must go through the field's prep; and the rows stored are those ``save()`` and
``bulk_create`` store."""

import random
import uuid
import warnings
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, models
from django.forms.models import model_to_dict
from django.utils import timezone
from django.utils.functional import lazy
from psycopg.types.json import Jsonb

from accounts.models import AuditEvent
from portal.rows import _prepared, _spec, insert_together, save_fields
from quotas.models import CapacityPool, CapacityRequest, RequestCheck, RequestEvent
from quotas.workflow import RequestState
from tests.factories import CapacityPoolFactory, GpuSkuFactory, RegionFactory

pytestmark = pytest.mark.django_db

lazy_str = lazy(lambda: "lazy text", str)


class _Big(models.IntegerChoices):
    SOME = 7


class _Colour(models.TextChoices):
    RED = "red"


def _comparable(value):
    if isinstance(value, Jsonb):
        return ("jsonb", repr(value.obj))
    return (type(value), value)


def _reference(obj, fields, *, add):
    out = []
    for f in fields:
        try:
            out.append(_comparable(f.get_db_prep_save(f.pre_save(obj, add), connection)))
        except Exception as e:  # the same error is expected from _prepared
            out.append(("raises", type(e)))
    return out


def _ours(obj, fields, *, add):
    out = []
    for spec in _spec(fields, connection):
        try:
            out.append(_comparable(_prepared(obj, (spec,), connection, add=add)[0]))
        except Exception as e:
            out.append(("raises", type(e)))
    return out


def _random_value(rng):
    naive = datetime(2026, 1, 1) + timedelta(seconds=rng.randint(0, 10**7))
    choices = [
        None,
        "",
        "ünïcode ✓",
        _Colour.RED,
        lazy_str(),
        0,
        rng.randint(-(2**40), 2**40),
        rng.randint(0, 30000),
        _Big.SOME,
        True,
        False,
        Decimal("12.345678"),
        Decimal("-0.5"),
        1.5,
        naive,
        naive.replace(tzinfo=UTC),
        timezone.now(),
        date(2026, 3, 1),
        {"a": [1, None, "x"], "n": 2},
        [1, 2],
        uuid.UUID(int=rng.getrandbits(128)),
        "10.0.0.1",
    ]
    return rng.choice(choices)


@pytest.mark.parametrize("model", [CapacityRequest, AuditEvent, RequestCheck, RequestEvent])
@pytest.mark.parametrize("add", [True, False])
def test_prepared_values_are_get_db_prep_save_s(model, add):
    fields = [f for f in model._meta.concrete_fields if f is not model._meta.pk]
    rng = random.Random(f"{model.__name__}{add}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # naive datetimes warn in both
        for _ in range(300):
            obj = model()
            for f in fields:
                setattr(obj, f.attname, _random_value(rng))
            assert _ours(obj, fields, add=add) == _reference(obj, fields, add=add)


def test_only_plain_field_classes_skip_their_prep():
    class Colour(models.CharField):
        def get_prep_value(self, value):
            return super().get_prep_value(value).upper()

    fields = {
        "char": models.CharField(max_length=5),
        "bool": models.BooleanField(null=True),
        "at": models.DateTimeField(),
        "count": models.PositiveIntegerField(),
        "fk": models.ForeignKey(CapacityPool, on_delete=models.CASCADE),
        "decimal": models.DecimalField(max_digits=5, decimal_places=2),
        "json": models.JSONField(),
        "uuid": models.UUIDField(),
        "day": models.DateField(),
        "ip": models.GenericIPAddressField(),
        "colour": Colour(max_length=5),
        "created": models.DateTimeField(auto_now_add=True),
    }
    for name, f in fields.items():
        f.set_attributes_from_name(name)
    plain = {f.name: (pre_save, kind) for f, (_, pre_save, kind, _, _) in zip(
        fields.values(), _spec(list(fields.values()), connection), strict=True)}  # fmt: skip
    assert {name: kind for name, (_, kind) in plain.items() if kind is not None} == {
        "char": str, "bool": bool, "at": datetime, "count": int, "fk": int, "created": datetime,
    }  # fmt: skip
    assert [name for name, (pre_save, _) in plain.items() if pre_save is not None] == ["created"]
    obj = RequestCheck()
    obj.colour = "red"
    assert _prepared(obj, _spec([fields["colour"]], connection), connection, add=True) == ["RED"]
    obj.created = None
    (stamped,) = _prepared(obj, _spec([fields["created"]], connection), connection, add=True)
    assert stamped is obj.created and stamped.tzinfo is not None


@pytest.fixture
def pools(db):
    sku, region = GpuSkuFactory(), RegionFactory()
    return [CapacityPoolFactory(sku=sku, region=region) for _ in range(2)]


def _stored(obj) -> dict:
    row = model_to_dict(type(obj).all_objects.get(pk=obj.pk))
    del row["id"]
    return row


def test_random_requests_store_what_save_stores(org, owner, member, pools):
    rng = random.Random(7)
    sku, region = pools[0].sku, pools[0].region
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(30):
            now = timezone.now() - timedelta(seconds=rng.randint(0, 10**6))
            naive = datetime(2026, 5, 1) + timedelta(seconds=rng.randint(0, 10**6))
            reservation, start = rng.random() < 0.7, rng.choice([now, naive])

            def at(nullable=True, now=now, naive=naive):
                return rng.choice([now, naive, *([None] if nullable else [])])

            def amount(places):
                return rng.choice([None, Decimal(rng.randint(0, 10**8)) / 10**places, 3])

            values = {
                "organization": org,
                "kind": CapacityRequest.Kind.RESERVATION if reservation else "quota_increase",
                "state": rng.choice(["draft", "submitted", "checking"]),
                "sku": sku,
                "region_id": region.pk,
                "gpu_count": rng.choice([8, 64, True]) if reservation else None,
                "starts_at": start if reservation else None,
                "ends_at": start + timedelta(days=30) if reservation else None,
                "on_demand_limit": None if reservation else rng.choice([0, 32]),
                "justification": rng.choice(["", "Training run", "ünïcode ✓", lazy_str()]),
                "waitlist_if_unavailable": rng.random() < 0.5,
                "requested_by": rng.choice([owner, member, None]),
                "signed_off_by_id": rng.choice([owner.pk, None]),
                "signed_off_at": at(),
                "flagged": rng.random() < 0.5,
                "capacity_available": rng.choice([None, True, False]),
                "decision_due_at": at(),
                "pool": rng.choice([None, *pools]),
                "offer_kind": rng.choice(["", *CapacityRequest.OfferKind.values]),
                "offer_gpu_count": rng.choice([None, 4]),
                "quote_currency": rng.choice(["", "USD"]),
                "quote_rate_per_gpu_hour": amount(6),
                "quote_gpu_hours": amount(6),
                "quote_total": amount(4),
                "submitted_at": at(),
                "state_changed_at": at(nullable=False),
                "version": rng.choice([1, 2, 300]),
                "updated_at": at(nullable=False),
            }
            saved, inserted = CapacityRequest(**values), CapacityRequest(**values)
            inserted.created_at = saved.created_at
            saved.save(force_insert=True)
            insert_together([inserted])
            assert _stored(inserted) == _stored(saved)
            changed = {
                "state": rng.choice(["pending_approval", RequestState.CHECKING]),
                "pool_id": rng.choice([None, pools[1].pk]),
                "quote_total": amount(5),
                "decided_at": at(),
                "version": rng.choice([3, 4]),
                "capacity_available": rng.choice([None, False]),
            }
            names = [*changed, "justification"]
            for name, value in changed.items():
                setattr(saved, name, value)
                setattr(inserted, name, value)
            saved.save(update_fields=names)
            save_fields(inserted, names)
            assert _stored(inserted) == _stored(saved)


def _copy(obj, **changed):
    model = type(obj)
    values = {f.attname: getattr(obj, f.attname) for f in model._meta.concrete_fields}
    return model(**{**values, "id": None, **changed})


def test_random_audits_and_checks_store_what_bulk_create_stores(org, owner, pools):
    rng = random.Random(11)
    request = CapacityRequest.objects.create(
        organization=org,
        kind="quota_increase",
        on_demand_limit=8,
        sku=pools[0].sku,
        region=pools[0].region,
        state_changed_at=timezone.now(),
        updated_at=timezone.now(),
    )

    def figures():
        return rng.choice([{}, {"value": "12.50", "n": [1, None, {"x": True}]}, [1, "a"], "s", 3])

    for run in range(1, 16):
        audits = [
            AuditEvent(
                organization=rng.choice([org, None]),
                actor=rng.choice([owner, None]),
                actor_email=rng.choice(["", "owner@acme.example"]),
                actor_is_staff=rng.random() < 0.5,
                action="capacity_request.submitted",
                target_type="quotas.CapacityRequest",
                target_id=str(rng.randint(1, 10**6)),
                target_repr=rng.choice(["", "Request ✓"]),
                changes=figures(),
                ip_address=rng.choice([None, "10.1.2.3", "2001:db8::1"]),
            )
            for _ in range(2)
        ]
        checks = [
            RequestCheck(
                organization_id=org.pk,
                request=request,
                run=run,
                name=name,
                outcome=rng.choice(RequestCheck.Outcome.values),
                reason=rng.choice(["", "ok"]),
                figures=figures(),
            )
            for name in ("standing", "capacity")
        ]
        bulk = [_copy(a) for a in audits]
        bulk_checks = [_copy(c, run=run + 100) for c in checks]
        AuditEvent.all_objects.bulk_create(bulk)
        RequestCheck.all_objects.bulk_create(bulk_checks)
        insert_together(audits, checks)
        for a, b in zip(audits + checks, bulk + bulk_checks, strict=True):
            ra, rb = _stored(a), _stored(b)
            ra.pop("run", None), rb.pop("run", None)
            assert ra == rb
