"""The request list page: the same body as DRF's own serialization of each row, with a fixed
number of queries (the pools and alternatives of a page are read once for the page)."""

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from quotas.api.fields import FrozenQuoteSerializer, quote_representation
from quotas.api.request_list import RequestListRows, _instant, _is_utc, _utc_instant_json
from quotas.api.requests import CapacityRequestSerializer, CapacityRequestViewSet
from quotas.checks import capacity_request_run_checks
from quotas.models import CapacityRequest
from quotas.services import (
    capacity_request_approve,
    capacity_request_counter_offer,
    capacity_request_create,
)
from tests.factories import CapacityPoolFactory, GpuSkuFactory, RegionFactory

from .conftest import bearer, reservation_request, soon


class DrfSerializer(CapacityRequestSerializer):
    """DRF's generic path: every field through DRF, pools read through the row's relations."""

    def to_representation(self, instance):
        return serializers.ModelSerializer.to_representation(self, instance)


# Everything the JSON encoder escapes, or must not: quotes, a backslash, control characters,
# non-ASCII letters, an emoji, and the two line separators the renderer escapes itself.
AWKWARD_TEXT = 'any of "H100" or H200 \\ café 🚀\u2028next\u2029line\x01\ttab\nnew'


def varied_requests(org, member, owner, pool, account_manager):
    """Drafts (in two SKUs and regions), a quota increase, alternatives, a counter-offer, an
    approval with its quote."""
    other_sku = GpuSkuFactory(code="h200-sxm", name="H200 SXM")
    west = RegionFactory(code="us-west-2")
    CapacityPoolFactory(sku=pool.sku, region=west)
    CapacityPoolFactory(sku=other_sku, region=west)
    start = soon(9)
    capacity_request_create(
        organization=org, actor=owner, sku=other_sku, region=west, gpu_count=8,
        starts_at=start + timedelta(days=3), ends_at=start + timedelta(days=4), submit=False,
    )  # fmt: skip
    capacity_request_create(
        organization=org, actor=member, sku=pool.sku, region=pool.region, gpu_count=8,
        starts_at=start, ends_at=start + timedelta(days=2), alternative_skus=[other_sku],
        alternative_regions=[west], submit=False, justification=AWKWARD_TEXT,
    )  # fmt: skip
    capacity_request_create(
        organization=org, actor=owner, kind="quota_increase", sku=pool.sku, region=pool.region,
        on_demand_limit=32,
    )  # fmt: skip
    offered = reservation_request(org, member, pool, gpu_count=16)
    capacity_request_run_checks(request_id=offered.pk)
    capacity_request_counter_offer(
        capacity_request=CapacityRequest.objects.for_organization(org).get(pk=offered.pk),
        actor=account_manager, gpu_count=8, note="half now",
    )  # fmt: skip
    approved = reservation_request(org, member, pool, gpu_count=8, days=5)
    capacity_request_run_checks(request_id=approved.pk)
    capacity_request_approve(
        capacity_request=CapacityRequest.objects.for_organization(org).get(pk=approved.pk),
        actor=account_manager,
    )
    member.delete()  # requested_by becomes null on the member's requests


def test_list_page_is_what_drf_would_render(org, member, owner, pool, account_manager, org_key):
    varied_requests(org, member, owner, pool, account_manager)
    response = bearer(org_key.key).get("/api/v1/orgs/acme/requests/?page_size=50")
    assert response.status_code == 200, response.content
    rows = CapacityRequest.objects.for_organization(org).order_by("-created_at", "-id")
    expected = [DrfSerializer(row).data for row in rows]
    assert response.json()["results"] == [dict(row) for row in _json(expected)]
    # Byte for byte what DRF's renderer writes for DRF's own serialization.
    envelope = {"count": len(expected), "next": None, "previous": None, "results": expected}
    assert response.content == JSONRenderer().render(envelope)
    indented = bearer(org_key.key).get(
        "/api/v1/orgs/acme/requests/?page_size=50", HTTP_ACCEPT="application/json; indent=2"
    )
    assert indented.content == JSONRenderer().render(envelope, "application/json; indent=2")
    kinds = {(r["state"], bool(r["offer"]), bool(r["quote"]), bool(r["pool"])) for r in expected}
    assert len(kinds) >= 4, kinds  # the page really mixes offers, quotes, pools and drafts
    assert any(r["alternative_skus"] and r["alternative_regions"] for r in expected)
    assert any(r["requested_by"] is None for r in expected)


def _json(data):
    import json

    from rest_framework.utils.encoders import JSONEncoder

    return json.loads(json.dumps(data, cls=JSONEncoder))


def test_list_page_takes_two_queries(org, member, owner, pool, account_manager, org_key):
    varied_requests(org, member, owner, pool, account_manager)
    client = bearer(org_key.key)
    client.get("/api/v1/orgs/acme/requests/")  # the key's first use records it
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/orgs/acme/requests/?page_size=50")
    assert response.status_code == 200
    # the key with its organization, user and role; the page with its count and what it names
    assert len(queries) == 2, "\n".join(q["sql"][:120] for q in queries.captured_queries)
    assert " AND r.id IN " not in queries.captured_queries[-1]["sql"]  # no filter: no subquery


def _expected(queryset):
    return [dict(row) for row in _json([DrfSerializer(row).data for row in queryset])]


@pytest.mark.parametrize(
    ("query", "narrow", "ordering"),
    [
        ("state=draft", {"state": "draft"}, ("-created_at", "-pk")),
        ("state=draft&state=approved", {"state__in": ["draft", "approved"]},
         ("-created_at", "-pk")),
        ("sku=h200-sxm", {"sku__code": "h200-sxm"}, ("-created_at", "-pk")),
        ("kind=quota_increase", {"kind": "quota_increase"}, ("-created_at", "-pk")),
        ("ordering=starts_at", {}, ("starts_at", "pk")),
        ("ordering=-decision_due_at", {}, ("-decision_due_at", "-pk")),
        ("region=us-east-1&ordering=state_changed_at", {"region__code": "us-east-1"},
         ("state_changed_at", "pk")),
        ("created_after=2000-01-01T00:00:00Z", {"created_at__gte": "2000-01-01T00:00:00Z"},
         ("-created_at", "-pk")),
    ],
)  # fmt: skip
def test_filtered_and_ordered_pages_are_what_drf_would_render(
    org, member, owner, pool, account_manager, org_key, query, narrow, ordering
):
    varied_requests(org, member, owner, pool, account_manager)
    rows = CapacityRequest.objects.for_organization(org).filter(**narrow).order_by(*ordering)
    assert rows.exists()  # each case selects something to compare
    response = bearer(org_key.key).get(f"/api/v1/orgs/acme/requests/?{query}")
    body = response.json()
    assert body["count"] == rows.count()
    assert body["results"] == _expected(rows)
    expected = [DrfSerializer(row).data for row in rows]
    assert response.content == JSONRenderer().render({**body, "results": expected})


def test_a_polled_list_is_ordered_without_building_a_queryset(
    org, member, owner, pool, account_manager, org_key, monkeypatch
):
    """A query with a page number and size only orders as the filter backends order an
    unfiltered list, worked out once per view; any other query goes through the backends."""
    varied_requests(org, member, owner, pool, account_manager)
    client = bearer(org_key.key)
    newest_first = _expected(
        CapacityRequest.objects.for_organization(org).order_by("-created_at", "-pk")
    )
    client.get("/api/v1/orgs/acme/requests/")  # the backends' unfiltered order, kept
    filtered = []
    original = CapacityRequestViewSet.filter_queryset

    def counted(self, queryset):
        filtered.append(self.request.query_params.urlencode())
        return original(self, queryset)

    monkeypatch.setattr(CapacityRequestViewSet, "filter_queryset", counted)
    for query in ("", "?page_size=2", "?page=2&page_size=2", "?ordering=starts_at", "?page=1"):
        body = client.get(f"/api/v1/orgs/acme/requests/{query}").json()
        if query == "?ordering=starts_at":
            by_start = CapacityRequest.objects.for_organization(org).order_by("starts_at", "pk")
            assert body["results"] == _expected(by_start)
        else:
            start = 2 if "page=2&" in query else 0
            size = 2 if "page_size=2" in query else len(newest_first)
            assert body["results"] == newest_first[start : start + size]
    assert filtered == ["ordering=starts_at"]


def test_pages_link_to_each_other_and_out_of_range_is_404(
    org, member, owner, pool, account_manager, org_key
):
    varied_requests(org, member, owner, pool, account_manager)
    client = bearer(org_key.key)
    rows = list(CapacityRequest.objects.for_organization(org).order_by("-created_at", "-pk"))
    assert len(rows) >= 3
    first = client.get("/api/v1/orgs/acme/requests/?page_size=2").json()
    second = client.get(first["next"].removeprefix("http://testserver")).json()
    assert first["count"] == second["count"] == len(rows)
    assert first["previous"] is None and second["previous"].endswith("page_size=2")
    assert first["results"] + second["results"] == _expected(rows[:4])
    missing = client.get("/api/v1/orgs/acme/requests/?page_size=2&page=99")
    assert missing.status_code == 404
    assert missing["Content-Type"].startswith("application/problem+json")
    last = client.get("/api/v1/orgs/acme/requests/?page_size=2&page=last").json()
    assert last["count"] == len(rows) and last["next"] is None
    assert last["results"] == _expected(rows[(len(rows) - 1) // 2 * 2 :])
    bad = client.get("/api/v1/orgs/acme/requests/?state=nonsense")
    assert bad.status_code == 400
    assert "state" in bad.content.decode()


def test_a_window_past_the_last_row_still_counts_every_row(
    org, member, owner, pool, account_manager
):
    varied_requests(org, member, owner, pool, account_manager)
    queryset = CapacityRequest.objects.for_organization(org).order_by("-created_at", "-pk")
    rows = RequestListRows(organization=org, queryset=queryset)
    total = queryset.count()
    assert rows.window(offset=0, limit=2)[1] == total
    assert rows.window(offset=total - 1, limit=2)[1] == total
    with CaptureQueriesContext(connection) as queries:
        assert rows.window(offset=total + 10, limit=2) == ([], total)
    assert len(queries) == 2  # the empty page, then the count alone
    assert rows.count() == total
    assert rows[1:3] == rows.window(offset=1, limit=2)[0]


def test_an_empty_list_has_a_first_page(org_key):
    body = bearer(org_key.key).get("/api/v1/orgs/acme/requests/").json()
    assert body == {"count": 0, "next": None, "previous": None, "results": []}


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_key_lookup_and_the_page_are_prepared_once_per_connection(org, owner, org_key):
    client = bearer(org_key.key)
    client.get("/api/v1/orgs/acme/requests/")
    prepared = _prepared_statements()
    assert any('FROM "accounts_apikey" k' in statement for statement in prepared)
    assert any("WITH page AS MATERIALIZED" in statement for statement in prepared)
    client.get("/api/v1/orgs/acme/requests/")
    assert _prepared_statements() == prepared  # used again, not prepared again


def test_the_page_is_the_same_without_prepared_statements(
    org, member, owner, pool, account_manager, org_key, monkeypatch
):
    """Behind a transaction pooler (DISABLE_SERVER_SIDE_CURSORS) statements are not prepared."""
    varied_requests(org, member, owner, pool, account_manager)
    client = bearer(org_key.key)
    prepared = client.get("/api/v1/orgs/acme/requests/?state=draft&state=approved").content
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    before = _prepared_statements()
    with CaptureQueriesContext(connection) as queries:
        plain_filtered = client.get("/api/v1/orgs/acme/requests/?state=draft&state=approved")
    assert plain_filtered.content == prepared
    assert "$1" not in queries.captured_queries[-1]["sql"]  # bound by the client this time
    assert _prepared_statements() == before  # nothing new prepared


INSTANTS = [
    datetime(2026, 11, 3, 10, 0, tzinfo=UTC),
    datetime(2026, 11, 3, 10, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 11, 3, 10, 0, 0, 120000, tzinfo=UTC),
    datetime(2026, 11, 3, 10, 0, 0, 999999, tzinfo=UTC),
    datetime(2000, 1, 1, tzinfo=UTC),
    datetime(2199, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
    datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC),  # the hour Paris moves its clocks
    *(
        datetime(2000, 1, 1, tzinfo=UTC)
        + timedelta(microseconds=random.Random(n).randrange(6 * 10**15))
        for n in range(200)
    ),
]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/St_Johns"])
def test_instants_read_as_text_are_what_drf_writes(db, zone):
    field = serializers.DateTimeField()
    with timezone.override(zone), connection.cursor() as cursor:
        current = timezone.get_current_timezone()
        for value in INSTANTS:
            cursor.execute("SELECT %s::timestamptz::text", [value])
            text = cursor.fetchone()[0]
            assert _instant(text, _is_utc(current), current) == field.to_representation(value)
            if _is_utc(current):  # the page's own path in UTC, encoded
                expected = json.dumps(field.to_representation(value))
                assert _utc_instant_json(text) == expected
                assert _utc_instant_json(None) == "null"


@pytest.mark.parametrize(
    "value",
    [Decimal("2.4900"), Decimal("2.49"), Decimal("-0.0000"), Decimal("123456.7890"),
     Decimal("1E+2"), Decimal("0.00005"), Decimal("999999.99"), 3, None],
)  # fmt: skip
def test_quote_figures_are_what_drf_writes(value):
    fields = FrozenQuoteSerializer().fields
    values = {"currency": "USD", "rate_per_gpu_hour": value, "gpu_hours": value,
              "total": value, "source": "contract"}  # fmt: skip
    assert quote_representation(**values) == {
        name: None if values[name] is None else field.to_representation(values[name])
        for name, field in fields.items()
    }


def test_price_columns_have_the_places_the_api_writes():
    # The list writes a price as its column's text, which has the column's places.
    for field in FrozenQuoteSerializer().fields.values():
        if isinstance(field, serializers.DecimalField):
            column = CapacityRequest._meta.get_field(field.source)
            assert (column.max_digits, column.decimal_places) == (
                field.max_digits,
                field.decimal_places,
            )
