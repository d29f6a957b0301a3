"""A body that ends before its Content-Length (the client went away mid-upload) is refused
whole, even when what arrived parses as a valid, shorter batch."""

import io

import pytest

from portal.errors import DomainError
from usage.models import UsageDaily, UsageRecord
from usage.services import usage_ingest

from .conftest import ENCODERS, JAN, hours, record


@pytest.fixture
def catalog(org, h100, east):
    return org


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "text/csv"])
def test_body_cut_between_records_writes_nothing(catalog, content_type):
    whole = ENCODERS[content_type]([record(hour=h) for h in hours(JAN, 4)])
    arrived = ENCODERS[content_type]([record(hour=h) for h in hours(JAN, 2)])
    assert whole.startswith(arrived)
    with pytest.raises(DomainError) as refused:
        usage_ingest(stream=io.BytesIO(arrived), content_type=content_type, length=len(whole))
    assert refused.value.field == "body"
    assert f"{len(arrived)} of the {len(whole)} bytes" in refused.value.message
    assert UsageRecord.objects.unscoped_for_staff().count() == 0
    assert UsageDaily.objects.unscoped_for_staff().count() == 0


def test_whole_body_of_its_announced_length_is_stored(catalog):
    body = ENCODERS["text/csv"]([record()])
    result = usage_ingest(stream=io.BytesIO(body), content_type="text/csv", length=len(body))
    assert result.inserted == 1
