import time

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from usage import demo
from usage.models import UsageRecord

from .conftest import rollups_match_raw, table_state


@pytest.mark.django_db
def test_demo_usage_is_a_year_of_hours_idempotent_and_fast():
    for path in settings.DEMO_SEEDERS[: settings.DEMO_SEEDERS.index("usage.demo.seed")]:
        import_string(path)()

    started = time.monotonic()
    demo.seed()
    elapsed = time.monotonic() - started
    first = table_state()
    demo.seed()

    assert table_state() == first
    assert elapsed < 15
    records = UsageRecord.objects.unscoped_for_staff()
    assert records.count() > 30_000
    assert set(records.values_list("organization__slug", flat=True).distinct()) == {
        "acme",
        "globex",
    }
    assert records.filter(reservation__isnull=False).exists()
    assert rollups_match_raw() == ([], [])
