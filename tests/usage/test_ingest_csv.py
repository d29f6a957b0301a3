"""CSV batches go into COPY as they stream and are validated in SQL: the same records, the same
errors (row, line, field, message) and the same counts as the JSON path, whatever the layout of
the CSV (quotes, line breaks inside quotes, blank lines, CRLF, a byte-order mark, extra
columns, a body of many chunks)."""

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from portal.errors import DomainError
from usage.models import UsageRecord
from usage.parsers import CHUNK_SIZE
from usage.services import UsageBatchRejected, usage_ingest

from .conftest import JAN, as_csv, hours, ingest, record, rollups_match_raw, table_state

pytestmark = pytest.mark.django_db

HEADER = "organization,sku,region,hour,gpu_hours\n"


@pytest.fixture
def catalog(org, other_org, h100, east, a100, west):
    return org


def ingest_csv(body: str | bytes, **kwargs):
    data = body.encode() if isinstance(body, str) else body
    return usage_ingest(stream=io.BytesIO(data), content_type="text/csv", **kwargs)


def rejected_errors(body: str | bytes) -> tuple[list[tuple], int]:
    with pytest.raises(UsageBatchRejected) as rejected:
        ingest_csv(body)
    errors = [(e["row"], e["line"], e["field"], e["message"]) for e in rejected.value.errors]
    return errors, rejected.value.error_count


def stored_hours(org) -> list[tuple]:
    return sorted(
        UsageRecord.objects.for_organization(org).values_list(
            "hour", "gpu_hours", "mean_utilization", "source"
        )
    )


BAD_FIELDS = [
    ({"organization": "initech"}, "organization"),
    ({"organization": " "}, "organization"),
    ({"sku": "nope"}, "sku"),
    ({"region": "mars-1"}, "region"),
    ({"hour": "2026-01-01T00:30:00Z"}, "hour"),
    ({"hour": "2026-01-01T00:00:00"}, "hour"),
    ({"hour": "2026-01-01T13:00:00+05:30"}, "hour"),  # 07:30 UTC
    ({"hour": "2026-02-30T00:00:00Z"}, "hour"),
    ({"hour": "0001-01-01T00:00:00+01:00"}, "hour"),
    ({"gpu_hours": "-1"}, "gpu_hours"),
    ({"gpu_hours": "lots"}, "gpu_hours"),
    ({"gpu_hours": "1.23456"}, "gpu_hours"),
    ({"gpu_hours": "1.50000"}, "gpu_hours"),
    ({"gpu_hours": "1e400"}, "gpu_hours"),
    ({"gpu_hours": "100000000"}, "gpu_hours"),
    ({"gpu_hours": "NaN"}, "gpu_hours"),
    ({"mean_utilization": "1.5"}, "mean_utilization"),
    ({"mean_utilization": "0.12345"}, "mean_utilization"),
    ({"reservation": "abc"}, "reservation"),
    ({"reservation": "9" * 30}, "reservation"),
    ({"reservation": "-3"}, "reservation"),
    ({"source": "has space"}, "source"),
    ({"source": "x" * 33}, "source"),
    ({"sku": None}, "sku"),
    ({"hour": None}, "hour"),
]


@pytest.mark.parametrize(("change", "field"), BAD_FIELDS)
def test_each_field_is_validated_with_the_json_paths_message(catalog, change, field):
    batch = [record(hour=JAN + timedelta(hours=1)), record(**change)]

    errors, count = rejected_errors(as_csv(batch))

    assert count == 1
    assert [(row, line, name) for row, line, name, _ in errors] == [(2, 3, field)]
    with pytest.raises(UsageBatchRejected) as as_ndjson:
        ingest(batch)
    assert errors[0][3] == as_ndjson.value.errors[0]["message"]
    assert table_state() == ([], [], [])


def test_every_fault_is_counted_and_the_first_hundred_described(catalog):
    batch = [record(hour=h) for h in hours(JAN, 300)]
    for n in range(0, 300, 2):
        batch[n]["sku"] = "nope"
    batch[10]["gpu_hours"] = "-2"  # row 11: two faults
    batch[11] = record(org="", hour=JAN, gpu_hours="")  # row 12: two fields missing

    errors, count = rejected_errors(as_csv(batch))

    assert count == 150 + 1 + 2
    assert len(errors) == 100
    assert errors[:3] == [
        (1, 2, "sku", "No GPU type with code 'nope'."),
        (3, 4, "sku", "No GPU type with code 'nope'."),
        (5, 6, "sku", "No GPU type with code 'nope'."),
    ]
    assert errors[5:9] == [
        (11, 12, "sku", "No GPU type with code 'nope'."),
        (11, 12, "gpu_hours", "GPU-hours cannot be negative."),
        (12, 13, "organization", "This field is required."),
        (12, 13, "gpu_hours", "This field is required."),
    ]
    assert UsageRecord.objects.unscoped_for_staff().count() == 0


def test_plain_and_other_spellings_store_the_same_figures(catalog):
    body = (
        "organization,sku,region,hour,gpu_hours,mean_utilization,reservation,source\n"
        "acme,h100-sxm,us-east-1,2026-01-01T00:00:00Z,7.5,0.25,,\n"
        f" {catalog.pk} , h100-sxm ,us-east-1,2026-01-01T06:00:00+05:00, 1e1 ,.5,,backfill\n"
        "acme,h100-sxm,us-east-1,2026-01-01 02:00:00+00:00,8.,1,,\n"
    )
    assert ingest_csv(body).inserted == 3
    assert stored_hours(catalog) == [
        (JAN, Decimal("7.5"), Decimal("0.25"), "metering"),
        (JAN + timedelta(hours=1), Decimal("10"), Decimal("0.5"), "backfill"),
        (JAN + timedelta(hours=2), Decimal("8"), Decimal("1"), "metering"),
    ]


def test_quotes_line_breaks_blank_lines_crlf_and_bom(catalog):
    body = (
        '\ufeff"organization",sku,region,hour,gpu_hours,note\r\n'
        'acme,h100-sxm,us-east-1,2026-01-01T00:00:00Z,1,"two\r\nlines, and a comma"\r\n'
        "\r\n"
        'acme,"h100-sxm",us-east-1,2026-01-01T01:00:00Z,2,"say ""hi"""\r\n'
        "acme,h100-sxm,us-east-1,2026-01-01T02:00:00Z,3,\r\n"
    )
    result = ingest_csv(body)
    assert (result.received, result.inserted) == (3, 3)
    assert [gpu for _, gpu, _, _ in stored_hours(catalog)] == [1, 2, 3]

    # The line of a bad row counts physical lines (the quoted break, the blank line).
    errors, _ = rejected_errors(body.replace("T02:00:00Z,3", "T02:00:00Z,x"))
    assert [(row, line, name) for row, line, name, _ in errors] == [(3, 6, "gpu_hours")]


def test_a_body_of_many_chunks_keeps_rows_and_lines(catalog):
    rows = [
        f"acme,h100-sxm,us-east-1,{(JAN + timedelta(hours=n)).isoformat()},{n % 50}.25"
        for n in range(6000)
    ]
    # A quoted line break straddling chunk boundaries, and a blank line, early on.
    rows[100] = rows[100].replace("acme", '"ac\nme"'.replace("\n", ""), 1)
    body = HEADER + "\n".join(rows[:200]) + "\n\n" + "\n".join(rows[200:]) + "\n"
    assert len(body) > 3 * CHUNK_SIZE
    assert ingest_csv(body).inserted == 6000

    bad = body.replace(rows[5000], rows[5000].replace("h100-sxm", "h200"))
    errors, count = rejected_errors(bad.replace(rows[5999], rows[5999].replace("acme", "x")))
    assert count == 2
    # row 5001 sits on line 5001 + 1 (header) + 1 (blank line)
    assert [(row, line, name) for row, line, name, _ in errors] == [
        (5001, 5003, "sku"),
        (6000, 6002, "organization"),
    ]


def test_quoted_line_break_across_a_chunk_boundary(catalog):
    filler = "x" * (CHUNK_SIZE - 100)
    body = (
        "organization,sku,region,hour,gpu_hours,note\n"
        f'acme,h100-sxm,us-east-1,2026-01-01T00:00:00Z,1,"{filler}\n{filler}"\n'
        "acme,h100-sxm,us-east-1,2026-01-01T01:00:00Z,oops,\n"
    )
    errors, _ = rejected_errors(body)
    assert [(row, line, name) for row, line, name, _ in errors] == [(2, 4, "gpu_hours")]


def test_a_missing_column_is_a_missing_field_on_every_row(catalog):
    body = "organization,sku,region,hour\nacme,h100-sxm,us-east-1,2026-01-01T00:00:00Z\n"
    errors, count = rejected_errors(body)
    assert errors == [(1, 2, "gpu_hours", "This field is required.")]
    assert count == 1


@pytest.mark.parametrize(
    ("body", "message", "line"),
    [
        (
            HEADER + "acme,h100-sxm,us-east-1,2026-01-01T00:00:00Z,1\nacme,h100-sxm,1\n",
            "Line 3 has 3 columns, the header 5.",
            3,
        ),
        (HEADER.encode() + b"acme,h100-sxm,us-east-1,2026-01-01T00:00:00Z,\xff\n", "UTF-8", 2),
        (
            HEADER + 'acme,h100-sxm,us-east-1,2026-01-01T00:00:00Z,"1\n' + " " * 1024 * 1024,
            "1048576 bytes",
            2,
        ),
    ],
)
def test_malformed_csv_is_refused_naming_the_line(catalog, body, message, line):
    with pytest.raises(DomainError) as refused:
        ingest_csv(body)
    assert refused.value.field == "body"
    assert message in refused.value.message
    assert refused.value.extra["line"] == line
    assert UsageRecord.objects.unscoped_for_staff().count() == 0


def test_header_only_or_empty_body_stores_nothing(catalog):
    assert ingest_csv(HEADER).received == 0
    assert ingest_csv("").received == 0


def test_utc_offsets_are_stored_as_utc_hours(catalog):
    body = HEADER + "acme,h100-sxm,us-east-1,2026-01-01T05:00:00+05:00,1\n"
    ingest_csv(body)
    assert UsageRecord.objects.for_organization(catalog).get().hour == datetime(
        2026, 1, 1, tzinfo=UTC
    )


def test_an_empty_quoted_field_is_an_absent_one(catalog):
    """ "" is what many writers put for a missing value: optional fields take their default,
    required ones are reported missing, as an absent key is in JSON."""
    body = (
        "organization,sku,region,hour,gpu_hours,mean_utilization,reservation,source\n"
        'acme,h100-sxm,us-east-1,2026-01-01T00:00:00Z,7.5,"","",""\n'
    )
    assert ingest_csv(body).inserted == 1
    assert stored_hours(catalog) == [(JAN, Decimal("7.5"), None, "metering")]

    errors, count = rejected_errors(body.replace("Z,7.5", 'Z,""').replace("acme", '""'))
    assert count == 2
    assert errors == [
        (1, 2, "organization", "This field is required."),
        (1, 2, "gpu_hours", "This field is required."),
    ]


def test_fresh_and_stored_series_in_one_batch(catalog):
    """One series moves forward (nothing stored from its first hour on: plain insert), another
    overlaps what is stored (upserted): counts and rollups as if each row were upserted."""
    ingest([record(hour=h, gpu_hours="2") for h in hours(JAN, 6)])
    body = HEADER + "".join(
        [f"acme,h100-sxm,us-east-1,{h.isoformat()},3\n" for h in hours(JAN + timedelta(hours=4), 4)]
        + [f"globex,h100-sxm,us-east-1,{h.isoformat()},5\n" for h in hours(JAN, 3)]
        + ["acme,h100-sxm,us-east-1,2026-01-01T05:00:00+00:00,2\n"]  # same as stored: last wins
    )

    result = ingest_csv(body)

    assert result.as_dict() == {
        "received": 8,
        "inserted": 5,  # acme 06:00 and 07:00, globex 00:00 to 02:00
        "replaced": 1,  # acme 04:00
        "unchanged": 1,  # acme 05:00 (its later row is the stored figure)
        "duplicates": 1,
    }
    assert rollups_match_raw() == ([], [])
    assert [gpu for _, gpu, _, _ in stored_hours(catalog)] == [2, 2, 2, 2, 3, 2, 3, 3]
