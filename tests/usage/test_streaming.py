"""The ingest endpoint reads its body as a stream: memory does not grow with the batch."""

import json
import tracemalloc
from datetime import timedelta

import pytest

from usage.models import UsageRecord
from usage.parsers import IterStream

from ..api.conftest import bearer
from .conftest import JAN

pytestmark = pytest.mark.django_db


def ndjson_lines(count: int):
    for n in range(count):
        # 2,000 distinct hours x one source per 2,000 rows: every row a new key.
        row = {
            "organization": "acme",
            "sku": "h100-sxm",
            "region": "us-east-1",
            "hour": (JAN + timedelta(hours=n % 2000)).isoformat(),
            "gpu_hours": f"{n % 97}.25",
            "source": f"b{count}-{n // 2000}",
        }
        yield (json.dumps(row) + "\n").encode()


def post_generated(client, count: int) -> tuple[int, int, int]:
    """POST ``count`` rows from a generator (nothing holds the body) and return the status,
    the body size and the peak memory Python allocated while the request ran."""
    size = sum(len(line) for line in ndjson_lines(count))
    tracemalloc.start()
    try:
        response = client.generic(
            "POST",
            "/api/v1/usage/ingest",
            content_type="application/x-ndjson",
            **{"wsgi.input": IterStream(ndjson_lines(count)), "CONTENT_LENGTH": str(size)},
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 200, response.content
    assert response.json()["inserted"] == count
    return response.status_code, size, peak


def test_ingest_memory_does_not_grow_with_the_body(org, h100, east, ingest_key, settings):
    # Lift Django's cap on a read body, so only the memory figures tell a buffered body apart.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    client = bearer(ingest_key.key)
    post_generated(client, 2_000)  # warm up: imports, caches, the connection

    _, small_size, small_peak = post_generated(client, 10_000)
    _, big_size, big_peak = post_generated(client, 50_000)

    assert UsageRecord.objects.for_organization(org).count() == 62_000
    assert big_size > 4 * small_size
    # A buffered body would cost at least its size (~6 MB here); the stream costs the same
    # few hundred kilobytes whatever the size.
    assert big_peak < big_size / 4, (big_peak, big_size)
    assert big_peak < 1.5 * small_peak + 256 * 1024, (small_peak, big_peak)
