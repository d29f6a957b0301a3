"""The tenant's request list (``GET /api/v1/orgs/<org>/requests/``) read as plain rows.

The list is the API's most called endpoint, and scripts poll it. Building it through the ORM
and the serializer cost ~35 ms of CPU per page of 50: compiling the querysets (2-5 ms each),
200 model instances, and loading ~300 ``timestamptz`` values through Django's pure-Python
loader. Here the page is one statement written once (the page's rows with the number of rows
in all, their SKU, region, requester, pools and alternatives), read as tuples, instants as
text (``datetime.fromisoformat`` in C), and turned into exactly what
``CapacityRequestSerializer`` gives for each row (``tests/api/test_request_list_page.py``
compares the two on a page of every kind of row).

Filters and ordering stay django-filter's and DRF's: the view's filter backends narrow and
order a queryset as usual; an unfiltered list (the common case) runs the statements as they
are, a filtered one adds ``id IN (<the filtered queryset's ids>)``, compiled by the ORM. A
query with nothing but a page number and size reuses the order the backends gave the first
such call (``RequestListRows.for_view``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework.generics import GenericAPIView

from accounts.models import Organization, User
from portal.api.renderers import EncodedJSON
from portal.prepared import prepared_cursor
from quotas.models import CapacityPool, CapacityRequest, GpuSku, Region

from .fields import (
    OfferSerializer,
    RepresentationPlan,
    representation_plan,
)

# The request's own columns, in the order the row builder reads them.
_COLUMNS = (
    "id",
    "kind",
    "state",
    "gpu_count",
    "starts_at",
    "ends_at",
    "on_demand_limit",
    "justification",
    "waitlist_if_unavailable",
    "extends_reservation",
    "flagged",
    "capacity_available",
    "decision_due_at",
    "decision_reason",
    "pool",
    "offer_kind",
    "offer_pool",
    "offer_gpu_count",
    "offer_starts_at",
    "offer_ends_at",
    "offer_expires_at",
    "offer_note",
    "quote_currency",
    "quote_rate_per_gpu_hour",
    "quote_gpu_hours",
    "quote_total",
    "quote_source",
    "submitted_at",
    "state_changed_at",
    "created_at",
    "updated_at",
    "version",
)


def _column(name: str) -> str:
    field = CapacityRequest._meta.get_field(name)
    quoted = f"r.{connection.ops.quote_name(field.column)}"
    # Instants come as text: Django's timestamptz loader is pure Python (~5 us a value).
    # Prices too: a numeric column's text has exactly its scale's places, which is what DRF's
    # DecimalField of the same places writes (the tests check the scales agree).
    if field.get_internal_type() in ("DateTimeField", "DecimalField"):
        return f"{quoted}::text"
    return quoted


def _alternatives(relation: str) -> str:
    """A CTE named after the relation, of (id, codes): each page row's alternative codes as
    one array, in the related model's order, then id. Only rows with alternatives appear (the
    outer query reads ``'{}'`` for the others)."""
    quote = connection.ops.quote_name
    field = CapacityRequest._meta.get_field(relation)
    model = field.related_model
    order = [
        f"x.{quote(model._meta.get_field(name.lstrip('-')).column)}"
        + (" DESC" if name.startswith("-") else "")
        for name in model._meta.ordering
    ]
    request = quote(field.m2m_column_name())
    return (
        f"{relation} AS MATERIALIZED (SELECT t.{request} AS id, "  # noqa: S608 (names from the models)
        f"array_agg(x.code ORDER BY {', '.join([*order, 'x.id'])}) AS codes "
        f"FROM page JOIN {quote(field.m2m_db_table())} t ON t.{request} = page.id "
        f"JOIN {quote(model._meta.db_table)} x ON x.id = t.{quote(field.m2m_reverse_name())} "
        f"GROUP BY t.{request})"
    )


@functools.cache
def _statements() -> tuple[str, str, str]:
    """(count, page ids, page rows) SQL. The count and the page's ids take the filters' extra
    condition (and the ids the ordering, limit and offset) per call; the rows read the page.

    The page's ids come with the number of rows before the limit (``count(*) OVER ()``): the
    paginator's count and its page in one statement and one snapshot. The rows start from
    the page and join what each row names: SKU, region, requester, the chosen and offered
    pools' codes (from the pools, read whole: a few hundred rows; joining pool, SKU and region
    twice let PostgreSQL's generic plan join every request first) and both alternatives
    (aggregated once for the page, not a subquery per row). Starting from the page keeps
    that plan too: the joins outnumber ``join_collapse_limit`` and stay in written order."""
    quote = connection.ops.quote_name
    request = quote(CapacityRequest._meta.db_table)

    def column_of(name: str) -> str:
        return quote(CapacityRequest._meta.get_field(name).column)

    scope = f"FROM {request} r WHERE r.{column_of('organization')} = %s"
    count = f"SELECT COUNT(*) {scope}"
    ids = f"SELECT r.id, count(*) OVER () AS total {scope}"
    sku, region = quote(GpuSku._meta.db_table), quote(Region._meta.db_table)
    pools = (
        f"SELECT p.id, s.code AS sku, g.code AS region FROM {quote(CapacityPool._meta.db_table)} p "  # noqa: S608
        f"JOIN {sku} s ON s.id = p.{quote(CapacityPool._meta.get_field('sku').column)} "
        f"JOIN {region} g ON g.id = p.{quote(CapacityPool._meta.get_field('region').column)}"
    )
    rows = (
        f"{_alternatives('alternative_skus')}, {_alternatives('alternative_regions')}, "  # noqa: S608
        f"pools AS MATERIALIZED ({pools}) "
        f"SELECT {', '.join(_column(name) for name in _COLUMNS)}, s.code, g.code, u.email, "
        f"pp.sku, pp.region, op.sku, op.region, "
        f"coalesce(alternative_skus.codes, '{{}}'), coalesce(alternative_regions.codes, '{{}}'), "
        f"page.total "
        f"FROM page JOIN {request} r ON r.id = page.id "
        f"JOIN {sku} s ON s.id = r.{column_of('sku')} "
        f"JOIN {region} g ON g.id = r.{column_of('region')} "
        f"LEFT JOIN {quote(User._meta.db_table)} u ON u.id = r.{column_of('requested_by')} "
        f"LEFT JOIN pools pp ON pp.id = r.{column_of('pool')} "
        f"LEFT JOIN pools op ON op.id = r.{column_of('offer_pool')} "
        f"LEFT JOIN alternative_skus ON alternative_skus.id = r.id "
        f"LEFT JOIN alternative_regions ON alternative_regions.id = r.id"
    )
    return count, ids, rows


def _order_by(ordering: Sequence[str]) -> str:
    """SQL of the ordering the filter backends chose: the model's own columns only (the view's
    ``ordering_fields`` and the primary key), exactly as ``QuerySet.order_by`` writes them."""
    terms = []
    for term in ordering:
        if not isinstance(term, str):
            raise ValueError(f"The request list cannot order by {term!r}.")
        name = term.lstrip("-")
        field = CapacityRequest._meta.pk if name == "pk" else CapacityRequest._meta.get_field(name)
        if not field.concrete or field.is_relation:
            raise ValueError(f"The request list cannot order by {term!r}.")
        direction = "DESC" if term.startswith("-") else "ASC"
        terms.append(f"r.{connection.ops.quote_name(field.column)} {direction}")
    return ", ".join(terms)


# {view class: the ORDER BY of its list when the query names no filter and no ordering}
_UNFILTERED_ORDER: dict[type, str] = {}


class RequestListRows:
    """What the paginator pages: ``count()`` and a slice of rows as the API shows them,
    encoded (``portal.api.renderers``).

    ``queryset`` is the organization's requests after the view's filter backends; its filters
    (when there are any beyond the organization) and its ordering are applied here.
    """

    ordered = True  # the ordering always ends with the primary key (StableOrderingFilter)

    def __init__(
        self,
        *,
        organization: Organization,
        queryset: QuerySet[CapacityRequest],
        base: QuerySet[CapacityRequest] | None = None,
    ):
        """``base``: the queryset the filter backends started from, if at hand."""
        if base is None:
            base = CapacityRequest.objects.for_organization(organization)
        if queryset.model is not CapacityRequest or queryset.query.order_by == ():
            raise ValueError("RequestListRows needs the organization's requests, ordered.")
        self.organization_id = organization.pk
        self.order_by = _order_by(queryset.query.order_by)
        self.narrow_sql, self.narrow_params = "", []
        if queryset.query.where != base.query.where:  # the filters narrowed it down
            ids_sql, ids_params = queryset.order_by().values("pk").query.sql_with_params()
            self.narrow_sql = f" AND r.id IN ({ids_sql})"
            self.narrow_params = list(ids_params)

    @classmethod
    def for_view(cls, *, view: GenericAPIView, organization: Organization) -> RequestListRows:
        """The organization's requests as the view's filter backends narrow and order them.

        A query with nothing but a page number and size (a script polling the list) is
        ordered as the backends order an unfiltered list, which depends on the view alone:
        worked out by the backends on the first such call, then reused without building and
        filtering a queryset (~0.2 ms of CPU a call)."""
        paging_only = set(view.request.query_params) <= {
            view.paginator.page_query_param,
            view.paginator.page_size_query_param,
        }
        if paging_only and (order_by := _UNFILTERED_ORDER.get(type(view))) is not None:
            rows = cls.__new__(cls)
            rows.organization_id, rows.order_by = organization.pk, order_by
            rows.narrow_sql, rows.narrow_params = "", []
            return rows
        base = CapacityRequest.objects.for_organization(organization)
        rows = cls(organization=organization, queryset=view.filter_queryset(base), base=base)
        if paging_only and not rows.narrow_sql:
            _UNFILTERED_ORDER[type(view)] = rows.order_by
        return rows

    def count(self) -> int:
        count_sql, _, _ = _statements()
        with prepared_cursor() as cursor:
            cursor.execute(count_sql + self.narrow_sql, [self.organization_id, *self.narrow_params])
            return cursor.fetchone()[0]

    def __getitem__(self, window: slice) -> list[EncodedJSON]:
        if not isinstance(window, slice) or window.step is not None:
            raise TypeError("RequestListRows is read a page (a slice) at a time.")
        offset = window.start or 0
        return self.window(offset=offset, limit=max(0, window.stop - offset))[0]

    def window(self, *, offset: int, limit: int) -> tuple[list[EncodedJSON], int]:
        """(the rows [offset, offset + limit), the number of rows in all): one statement,
        plus the count alone when the window is past the last row."""
        _, ids_sql, rows_sql = _statements()
        # The page's ids first (the sort reads only what it sorts on), then its rows.
        page = f"{ids_sql}{self.narrow_sql} ORDER BY {self.order_by} LIMIT %s OFFSET %s"
        with prepared_cursor() as cursor:
            cursor.execute(
                f"WITH page AS MATERIALIZED ({page}), {rows_sql} ORDER BY {self.order_by}",
                [self.organization_id, *self.narrow_params, limit, offset],
            )
            rows = cursor.fetchall()
        # Past the last row the page has no count to carry: it is asked for alone.
        total = rows[0][-1] if rows else (self.count() if offset else 0)
        zone = timezone.get_current_timezone() if settings.USE_TZ else None
        if _is_utc(zone):
            instant, instant_json = _utc_instant, _utc_instant_json
        else:
            instant = functools.partial(_instant, utc=False, zone=zone)

            def instant_json(text: str | None) -> str:
                return _text(instant(text))

        return [_row(row, instant, instant_json) for row in rows], total


def _instant(text: str | None, utc: bool, zone: tzinfo | None) -> str | None:
    """DRF's ``DateTimeField`` output (ISO 8601 in the current time zone, ``Z`` for UTC) from
    PostgreSQL's text of a ``timestamptz`` (ISO DateStyle, which psycopg requires too)."""
    if text is None:
        return None
    if utc and text.endswith("+00"):
        return _utc_instant(text)
    value = datetime.fromisoformat(text)
    if zone is not None:
        value = value.astimezone(zone)
    iso = value.isoformat()
    return iso[:-6] + "Z" if iso.endswith("+00:00") else iso


def _utc_instant(text: str | None) -> str | None:
    """``_instant`` in UTC: "2026-11-03 10:00:00.12+00" -> "2026-11-03T10:00:00.120000Z".
    PostgreSQL drops the fraction's trailing zeros, Python writes six digits whenever there is
    a fraction."""
    if text is None:
        return None
    if not text.endswith("+00"):  # not the connection's UTC: the general way
        return _instant(text, utc=False, zone=UTC)
    day, _, clock = text[:-3].partition(" ")
    whole, dot, fraction = clock.partition(".")
    return f"{day}T{whole}.{fraction:0<6}Z" if dot else f"{day}T{whole}Z"


def _utc_instant_json(text: str | None) -> str:
    """``_utc_instant`` encoded (an ISO 8601 instant needs no escaping)."""
    value = _utc_instant(text)
    return "null" if value is None else f'"{value}"'


def _is_utc(zone: tzinfo | None) -> bool:
    """Whether instants in UTC stay as they are in this zone (it never leaves offset 0)."""
    if zone is None:
        return True
    return getattr(zone, "key", None) in ("UTC", "Etc/UTC") or zone is UTC


def _row(
    row: tuple,
    instant: Callable[[str | None], str | None],
    instant_json: Callable[[str | None], str],
) -> EncodedJSON:
    """The row as ``CapacityRequestSerializer`` represents it, encoded as the API's renderer
    encodes it (``tests/api/test_request_list_page.py`` compares the bytes). Columns that are
    NOT NULL (the primary key, kind, state, texts, flags, version; SKU and region come from
    inner joins) are encoded without a test for null: ~20 calls a row fewer."""
    (
        pk, kind, state, gpu_count, starts_at, ends_at, on_demand_limit, justification,
        waitlist_if_unavailable, extends_reservation_id, flagged, capacity_available,
        decision_due_at, decision_reason, pool_id, offer_kind, offer_pool_id, offer_gpu_count,
        offer_starts_at, offer_ends_at, offer_expires_at, offer_note, quote_currency,
        quote_rate, quote_gpu_hours, quote_total, quote_source, submitted_at, state_changed_at,
        created_at, updated_at, version, sku_code, region_code, requester_email,
        pool_sku, pool_region, offer_sku, offer_region, alternative_skus, alternative_regions, _,
    ) = row  # fmt: skip
    encode = _encode_string
    pool = f'{{"sku":{_text(pool_sku)},"region":{_text(pool_region)}}}' if pool_id else "null"
    offer = "null"
    if offer_kind and offer_pool_id:
        offer = _object(
            OFFER_PLAN,
            {
                "kind": offer_kind,
                "sku": offer_sku,
                "region": offer_region,
                "gpu_count": offer_gpu_count,
                "starts_at": instant(offer_starts_at),
                "ends_at": instant(offer_ends_at),
                "expires_at": instant(offer_expires_at),
                "note": offer_note,
            },
        )
    quote = "null"
    if quote_total is not None:  # FrozenQuoteSerializer, its prices as the columns give them
        quote = (
            f'{{"currency":{encode(quote_currency)},'
            f'"rate_per_gpu_hour":{_price(quote_rate)},"gpu_hours":{_price(quote_gpu_hours)},'
            f'"total":"{quote_total}","source":{encode(quote_source)}}}'
        )
    # The keys in the order of CapacityRequestSerializer.Meta.fields; "reference" is
    # CapacityRequest.reference.
    return EncodedJSON(
        f'{{"id":{int.__repr__(pk)},"reference":"REQ-{int.__repr__(pk)}",'
        f'"kind":{encode(kind)},"state":{encode(state)},'
        f'"sku":{encode(sku_code)},"region":{encode(region_code)},'
        f'"gpu_count":{_number(gpu_count)},"starts_at":{instant_json(starts_at)},'
        f'"ends_at":{instant_json(ends_at)},"on_demand_limit":{_number(on_demand_limit)},'
        f'"justification":{encode(justification)},'
        f'"alternative_skus":{_texts(alternative_skus)},'
        f'"alternative_regions":{_texts(alternative_regions)},'
        f'"waitlist_if_unavailable":{"true" if waitlist_if_unavailable else "false"},'
        f'"extends_reservation":{_number(extends_reservation_id)},'
        f'"requested_by":{_text(requester_email)},"flagged":{"true" if flagged else "false"},'
        f'"capacity_available":{_boolean(capacity_available)},'
        f'"decision_due_at":{instant_json(decision_due_at)},'
        f'"decision_reason":{encode(decision_reason)},"pool":{pool},"offer":{offer},'
        f'"quote":{quote},"submitted_at":{instant_json(submitted_at)},'
        f'"state_changed_at":{instant_json(state_changed_at)},'
        f'"created_at":{instant_json(created_at)},'
        f'"updated_at":{instant_json(updated_at)},"version":{int.__repr__(version)}}}'
    )


OFFER_PLAN = representation_plan("offer", OfferSerializer)

# JSON values as the json module writes them (ensure_ascii=False: only quotes, backslashes
# and control characters are escaped; U+2028/U+2029 are left to the renderer).
_encode_string = json.encoder.encode_basestring


def _text(value: str | None) -> str:
    return "null" if value is None else _encode_string(value)


def _price(value: str | None) -> str:
    """A numeric column's text has exactly its scale's places (and NaN is "NaN"; a numeric
    column with a scale holds no infinity): what DRF's DecimalField with those places writes."""
    return "null" if value is None else f'"{value}"'


def _number(value: int | None) -> str:
    return "null" if value is None else int.__repr__(value)


def _boolean(value: bool | None) -> str:
    return "null" if value is None else ("true" if value else "false")


def _texts(values: list[str]) -> str:
    return "[" + ",".join(map(_encode_string, values)) + "]" if values else "[]"


def _object(plan: RepresentationPlan, values: dict[str, Any]) -> str:
    """A nested serializer's object (OfferSerializer, FrozenQuoteSerializer), from its values
    by field name: its fields' representations, encoded."""
    return (
        "{"
        + ",".join(f"{key}:{_value(represent(values[name]))}" for name, key, represent in plan)
        + "}"
    )


def _value(value: Any) -> str:
    """A field's representation encoded: text, a whole number, a boolean or null."""
    if value is None or isinstance(value, bool):
        return _boolean(value)
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, int):
        return int.__repr__(value)
    raise TypeError(f"No JSON encoding here for {type(value).__name__}.")
