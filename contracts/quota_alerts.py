"""Quota utilization alerts: GPUs in use against the organization's quota, per SKU and region.

Utilization in an hour = GPU-hours metered in that hour (the mean number of GPUs in use) /
quota at the hour's start (``quotas.selectors.quotas.organization_quota_at``: running
reservations + on-demand limit) x 100; use without any quota counts as over 100 %. Each of
80, 95 and 100 % fires once when crossed and re-arms when utilization falls back below it
(``QuotaAlertState``). Evaluated for the last complete hour by the hourly scan and after
usage ingest.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Membership, Organization, Role
from accounts.services import audit_record
from quotas.models import GpuSku, Region
from quotas.selectors.quotas import organization_quota_at

from .models import QuotaAlertState
from .signals import quota_alert_fired

THRESHOLDS = (80, 95, 100)
OVER = Decimal("999.9")  # use without quota


def last_complete_hour(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def quota_utilization(*, organization: Organization, hour: datetime) -> dict[tuple, tuple]:
    """(sku id, region id) -> (GPUs in use, quota, percent) for the hour [hour, hour + 1h)."""
    from usage.models import UsageRecord

    quota = {
        (line.sku_id, line.region_id): line.total
        for line in organization_quota_at(organization=organization, at=hour)
    }
    used = {
        (row["sku_id"], row["region_id"]): row["gpus"]
        for row in UsageRecord.objects.for_organization(organization)
        .filter(hour=hour)
        .values("sku_id", "region_id")
        .annotate(gpus=Sum("gpu_hours"))
        .order_by()
    }
    figures = {}
    for key in set(quota) | set(used):
        gpus, limit = used.get(key, Decimal("0")), quota.get(key, 0)
        if limit:
            percent = (gpus * 100 / limit).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
        else:
            percent = OVER if gpus > 0 else Decimal("0")
        figures[key] = (gpus, limit, percent)
    return figures


@transaction.atomic
def quota_alerts_evaluate(
    *, organization: Organization, hour: datetime | None = None
) -> list[tuple[int, int, int]]:
    """Fire the thresholds crossed in ``hour`` (the last complete hour by default), re-arm
    those fallen below. Returns (sku id, region id, threshold) of each alert fired."""
    hour = hour or last_complete_hour()
    Organization.objects.select_for_update().get(pk=organization.pk)
    figures = quota_utilization(organization=organization, hour=hour)
    states = {
        (s.sku_id, s.region_id, s.threshold): s
        for s in QuotaAlertState.objects.for_organization(organization).select_for_update()
    }
    keys = set(figures) | {(sku_id, region_id) for sku_id, region_id, _ in states}
    fired = []
    for sku_id, region_id in sorted(keys):
        gpus, limit, percent = figures.get((sku_id, region_id), (Decimal("0"), 0, Decimal("0")))
        for threshold in THRESHOLDS:
            state = states.get((sku_id, region_id, threshold))
            crossed = percent >= threshold
            if state is None:
                if not crossed:
                    continue
                state = QuotaAlertState(
                    organization=organization,
                    sku_id=sku_id,
                    region_id=region_id,
                    threshold=threshold,
                )
            state.last_percent, state.last_hour = percent, hour
            if crossed and not state.fired:
                state.fired, state.fired_at = True, timezone.now()
                state.fire_count += 1
                fired.append((sku_id, region_id, threshold))
                state.save()
                _publish(organization, state, gpus, limit, percent)
                continue
            if not crossed and state.fired:
                state.fired, state.rearmed_at = False, timezone.now()
            state.save()
    return fired


def _publish(organization, state: QuotaAlertState, gpus, limit, percent) -> None:
    from notifications.services import notification_publish
    from webhooks.services import webhook_event_publish

    sku = GpuSku.objects.get(pk=state.sku_id)
    region = Region.objects.get(pk=state.region_id)
    # Names the alert and its n-th firing: a repeated evaluation never tells anyone twice.
    event_id = f"quota:{state.sku_id}:{state.region_id}:{state.threshold}:{state.fire_count}"
    title = f"{sku.name} in {region.code}: quota {state.threshold} % used"
    body = (
        f"{gpus.normalize():f} GPUs were in use in the hour from {state.last_hour:%Y-%m-%d %H:%M} "
        f"UTC against a quota of {limit} ({percent} %)."
        if limit
        else f"{gpus.normalize():f} GPUs were in use without any quota for {sku.name} in "
        f"{region.code}."
    )
    recipients = [
        m.user
        for m in Membership.objects.for_organization(organization)
        .filter(role__in=[Role.OWNER, Role.ADMIN], user__is_active=True)
        .select_related("user")
    ]
    notification_publish(
        event="quota.utilization",
        organization=organization,
        recipients=recipients,
        title=title,
        body=body,
        url=f"/o/{organization.slug}/usage/",
        dedupe_key=event_id,
    )
    audit_record(
        organization=organization,
        actor=None,
        action="quota.utilization_alert",
        target=organization,
        changes={"sku": sku.code, "region": region.code, "threshold": state.threshold},
    )
    payload = {
        "sku": sku.code,
        "region": region.code,
        "threshold": state.threshold,
        "percent": str(percent),
        "gpus_in_use": str(gpus),
        "quota": limit,
        "hour": state.last_hour.isoformat().replace("+00:00", "Z"),
        "url": f"{settings.SITE_URL}/o/{organization.slug}/usage/",
    }
    webhook_event_publish(
        organization=organization,
        event_type="quota.utilization",
        data=payload,
        event_id=event_id,
    )
    transaction.on_commit(
        lambda: quota_alert_fired.send(
            sender=QuotaAlertState,
            organization=organization,
            event="quota.utilization",
            payload=payload,
        ),
        robust=True,
    )
