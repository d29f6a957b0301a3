from decimal import Decimal

import pytest

from contracts.models import QuotaAlertState
from contracts.quota_alerts import quota_alerts_evaluate, quota_utilization
from notifications.models import Notification
from quotas.models import OnDemandQuotaChange

from .conftest import at, make_reservation, record_usage

HOUR = at(2026, 5, 4, 10)


@pytest.fixture
def quota(org, h100, east):
    """16 GPUs: 8 reserved, 8 on demand."""
    make_reservation(org, h100, east, at(2026, 5, 1), at(2026, 6, 1), gpu_count=8)
    OnDemandQuotaChange.all_objects.create(
        organization=org,
        sku=h100,
        region=east,
        old_limit=0,
        new_limit=8,
        effective_at=at(2026, 1, 1),
    )


def fired(org):
    return sorted(
        QuotaAlertState.all_objects.filter(organization=org, fired=True).values_list(
            "threshold", flat=True
        )
    )


@pytest.mark.django_db
def test_quota_alerts_fire_once_per_crossing_and_rearm(org, owner, member, quota, h100, east):
    record_usage(org, h100, east, HOUR, "13.6")  # 85 % of 16
    assert quota_utilization(organization=org, hour=HOUR)[(h100.pk, east.pk)] == (
        Decimal("13.6"), 16, Decimal("85.0"),
    )  # fmt: skip
    assert [t for *_, t in quota_alerts_evaluate(organization=org, hour=HOUR)] == [80]
    assert quota_alerts_evaluate(organization=org, hour=HOUR) == []  # once
    assert Notification.objects.filter(event="quota.utilization", recipient=owner).count() == 1
    assert not Notification.objects.filter(recipient=member).exists()

    later = at(2026, 5, 4, 11)
    record_usage(org, h100, east, later, "16")  # 100 %
    assert [t for *_, t in quota_alerts_evaluate(organization=org, hour=later)] == [95, 100]
    assert fired(org) == [80, 95, 100]

    quiet = at(2026, 5, 4, 12)
    record_usage(org, h100, east, quiet, "12")  # 75 %: every threshold re-arms
    assert quota_alerts_evaluate(organization=org, hour=quiet) == []
    assert fired(org) == []

    busy = at(2026, 5, 4, 13)
    record_usage(org, h100, east, busy, "14")  # 87.5 %: 80 fires a second time
    assert [t for *_, t in quota_alerts_evaluate(organization=org, hour=busy)] == [80]
    state = QuotaAlertState.all_objects.get(organization=org, threshold=80)
    assert state.fire_count == 2
    assert Notification.objects.filter(event="quota.utilization", recipient=owner).count() == 4


@pytest.mark.django_db
def test_use_without_quota_is_over_100_percent(org, owner, h100, west):
    record_usage(org, h100, west, HOUR, "1")
    assert [t for *_, t in quota_alerts_evaluate(organization=org, hour=HOUR)] == [80, 95, 100]


@pytest.mark.django_db
def test_another_organizations_usage_does_not_count(org, other_org, owner, quota, h100, east):
    record_usage(other_org, h100, east, HOUR, "16")
    assert quota_alerts_evaluate(organization=org, hour=HOUR) == []
