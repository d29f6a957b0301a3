"""The create endpoint reads its input as CapacityRequestCreateSerializer reads it (validated
data, or the same errors in the same order), with the SKU, the region and their pool read in
one statement: held equal on random input, and end to end on random bodies."""

import random
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from quotas.api import request_create
from quotas.api.request_create import create_input_validate
from quotas.api.requests import CapacityRequestCreateSerializer
from quotas.models import CapacityPool
from quotas.selectors.catalog import sku_region_pool_by_codes
from tests.factories import CapacityPoolFactory, GpuSkuFactory, RegionFactory

from .conftest import bearer, soon

SKUS = ["h100-sxm", "h200-sxm", "a100-old", "nope", "H100-SXM"]
REGIONS = ["us-east-1", "us-west-2", "eu-closed-1", "nowhere"]


@pytest.fixture
def catalog(pool, h100, east):
    """Active and retired SKUs and regions, with active, inactive and missing pools."""
    h200 = GpuSkuFactory(code="h200-sxm", name="H200 SXM")
    a100 = GpuSkuFactory(code="a100-old", name="A100", active=False)
    west = RegionFactory(code="us-west-2", name="Oregon 2")
    closed = RegionFactory(code="eu-closed-1", name="Closed", active=False)
    CapacityPoolFactory(sku=h200, region=east)
    CapacityPoolFactory(sku=h100, region=west, active=False)
    CapacityPoolFactory(sku=a100, region=east)
    CapacityPoolFactory(sku=h100, region=closed)
    return pool


def _instant(rng: random.Random):
    start = soon(rng.choice([-2, 0, 3, 40, 400, 3000]))
    return rng.choice(
        [
            start.isoformat(),
            start.isoformat().replace("+00:00", "Z"),
            start.strftime("%Y-%m-%dT%H:%M:%S"),  # naive: the current zone
            start.date().isoformat(),
            (start + timedelta(days=rng.choice([1, 7, 200]))).isoformat(),
            "1999-12-31T23:00:00Z",
            "2250-01-01T00:00:00Z",
            "soon",
            "",
            None,
            17,
            ["2030-01-01T00:00:00Z"],
        ]
    )


def _code(rng: random.Random, codes: list[str]):
    return rng.choice(
        [*codes, *codes, "", None, 7, True, [codes[0]], {"code": codes[0]}, "a\x00b", "\ud800"]
    )


def _codes(rng: random.Random, codes: list[str]):
    return rng.choice([[], [rng.choice(codes)], codes[:2], [codes[0], codes[0]], "x", None, [5]])


VALUES = {
    "kind": lambda rng: rng.choice(["reservation", "quota_increase", "both", "", None, 1]),
    "sku": lambda rng: _code(rng, SKUS),
    "region": lambda rng: _code(rng, REGIONS),
    "gpu_count": lambda rng: rng.choice([8, 16, "8", 0, -1, None, 8.0, 8.5, "x", True, 10**30]),
    "starts_at": _instant,
    "ends_at": _instant,
    "on_demand_limit": lambda rng: rng.choice([0, 32, -4, None, "x", "12"]),
    "justification": lambda rng: rng.choice(["Training", "", "  padded  ", None, 5, "a\x00b"]),
    "alternative_skus": lambda rng: _codes(rng, SKUS),
    "alternative_regions": lambda rng: _codes(rng, REGIONS),
    "waitlist_if_unavailable": lambda rng: rng.choice([True, False, "true", "no", "maybe", None]),
    "submit": lambda rng: rng.choice([True, False, "false", 1, None, "x"]),
}


def _body(rng: random.Random):
    """A valid body with none to a few fields changed to random (often wrong) values."""
    if rng.random() < 0.03:
        return rng.choice([[], "text", 5, None])
    start = soon(rng.choice([3, 10, 40]))
    body = {
        "sku": rng.choice(SKUS[:2]),
        "region": "us-east-1",
        "gpu_count": rng.choice([8, 16]),
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=rng.choice([1, 7]))).isoformat(),
    }
    for name in rng.sample(sorted(VALUES), rng.choice([0, 0, 1, 1, 2, 3, 5])):
        if rng.random() < 0.2:
            body.pop(name, None)
        else:
            body[name] = VALUES[name](rng)
    if rng.random() < 0.1:
        body["unknown"] = "ignored"
    return body


def _plain(value):
    """Errors as (text, code) in their order; model instances as every column."""
    if isinstance(value, ErrorDetail):
        return ("error", str(value), value.code)
    if isinstance(value, dict):
        return [(key, _plain(item)) for key, item in value.items()]
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "_meta"):
        return (type(value), {f.attname: getattr(value, f.attname) for f in value._meta.fields})
    return value


def _outcome(read):
    try:
        with transaction.atomic():
            return "valid", _plain(read())
    except serializers.ValidationError as exc:
        return "invalid", _plain(exc.detail)
    except Exception as exc:  # a code PostgreSQL refuses (NUL) fails as it failed
        return "raised", type(exc)


def _by_serializer(body):
    serializer = CapacityRequestCreateSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@pytest.mark.parametrize("seed", range(4))
def test_input_is_what_the_serializer_gives(catalog, seed):
    rng = random.Random(seed)
    outcomes, read_together = set(), 0
    for _ in range(150):
        body = _body(rng)
        pools = []

        def read(body=body, pools=pools):
            validated, pool = create_input_validate(
                body, serializer_class=CapacityRequestCreateSerializer
            )
            pools.append(pool)
            return validated

        expected = _outcome(lambda body=body: _by_serializer(body))
        assert _outcome(read) == expected, body
        outcomes.add(expected[0])
        if pools and pools[0] is not None:
            validated = _by_serializer(body)
            orm = CapacityPool.objects.filter(
                sku=validated["sku"], region=validated["region"], active=True
            ).first()
            assert _plain(pools[0]) == _plain(orm)
            read_together += 1
    assert {"valid", "invalid"} <= outcomes
    assert read_together > 50


def test_one_statement_reads_the_sku_region_and_pool(catalog, h100, east):
    from quotas.models import GpuSku, Region

    for sku_code in SKUS:
        for region_code in REGIONS:
            with CaptureQueriesContext(connection) as queries:
                sku, region, pool = sku_region_pool_by_codes(
                    sku_code=sku_code, region_code=region_code
                )
            assert len(queries.captured_queries) == 1
            orm_sku = GpuSku.objects.filter(active=True, code=sku_code).first()
            orm_region = Region.objects.filter(active=True, code=region_code).first()
            orm_pool = (
                CapacityPool.objects.filter(sku=orm_sku, region=orm_region, active=True).first()
                if orm_sku and orm_region
                else None
            )
            assert _plain([sku, region, pool]) == _plain([orm_sku, orm_region, orm_pool])


VOLATILE = {"id", "reference", "created_at", "updated_at", "submitted_at", "state_changed_at"}


def _post(org_key, body):
    response = bearer(org_key.key).post("/api/v1/orgs/acme/requests/", body, format="json")
    body = response.json()
    if response.status_code == 201:
        body = {key: value for key, value in body.items() if key not in VOLATILE}
        body["timeline"] = [{**event, "at": None} for event in body["timeline"]]
    return response.status_code, body


@pytest.mark.parametrize("seed", range(2))
def test_endpoint_answers_as_with_the_serializer(catalog, org_key, monkeypatch, seed):
    rng = random.Random(100 + seed)
    statuses = set()
    for _ in range(40):
        body = _body(rng)
        answers = []
        for through_serializer in (False, True):
            with monkeypatch.context() as patch:
                if through_serializer:
                    patch.setattr(request_create, "_plain_code", lambda value: False)
                answers.append(_outcome(lambda body=body: _post(org_key, body)))
        assert answers[0] == answers[1], body
        statuses.add(answers[0][1][0] if answers[0][0] == "valid" else answers[0][0])
    assert {201, 400} <= statuses


@pytest.mark.parametrize("hook", ["validate", "validate_gpu_count"])
def test_a_serializer_that_validates_beyond_its_fields_is_refused(hook, db):
    # The fields' own validation is all create_input_validate runs: validation it would skip
    # must not pass unnoticed.
    subclass = type("Stricter", (CapacityRequestCreateSerializer,), {hook: lambda self, v: v})
    body = {"sku": "h100", "region": "us-east-1"}
    with pytest.raises(TypeError, match="validates beyond its fields"):
        create_input_validate(body, serializer_class=subclass)
