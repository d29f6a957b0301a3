"""Celery entry points of contracts: thin, idempotent, ids as arguments.

Scheduled by django-celery-beat (``contracts/migrations/0003_beat_schedules.py``):

- ``contracts.statements_close_task`` (daily 02:00 UTC): issues every organization's statement
  of the month that ended last, once (issuing is idempotent), and expires contracts whose
  term ended.
- ``contracts.spend_alerts_scan_task`` (hourly): re-evaluates every active contract's alerts.
"""

from __future__ import annotations

from datetime import date

from celery import shared_task

from accounts.models import Organization

from . import services
from .models import Contract


@shared_task(name="contracts.statement_issue_task")
def statement_issue_task(organization_id: int, month: str) -> bool:
    """Issue one organization's statement of ``month`` (YYYY-MM-DD, first day)."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return False
    _, created = services.statement_issue(
        organization=organization, month=date.fromisoformat(month)
    )
    return created


@shared_task(name="contracts.statements_close_task")
def statements_close_task() -> int:
    services.contract_expire_due()
    month = services.statement_month_to_issue()
    organization_ids = list(Organization.objects.order_by("pk").values_list("pk", flat=True))
    for organization_id in organization_ids:
        statement_issue_task.delay(organization_id, month.isoformat())
    return len(organization_ids)


@shared_task(name="contracts.contract_spend_alerts_task")
def contract_spend_alerts_task(contract_id: int) -> list[str]:
    contract = Contract.all_objects.filter(pk=contract_id).first()
    if contract is None:
        return []
    return services.contract_spend_alerts_evaluate(contract=contract)


@shared_task(name="contracts.spend_alerts_scan_task")
def spend_alerts_scan_task() -> int:
    contract_ids = list(
        Contract.objects.unscoped_for_staff()
        .filter(status=Contract.Status.ACTIVE)
        .values_list("pk", flat=True)
    )
    for contract_id in contract_ids:
        contract_spend_alerts_task.delay(contract_id)
    return len(contract_ids)


@shared_task(name="contracts.quota_alerts_task")
def quota_alerts_task(organization_id: int) -> int:
    from .quota_alerts import quota_alerts_evaluate

    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return 0
    return len(quota_alerts_evaluate(organization=organization))


@shared_task(name="contracts.usage_ingest_alerts_task")
def usage_ingest_alerts_task(organization_ids: list[int]) -> int:
    """After a usage ingest commits: the alerts of the organizations it named."""
    return services.alerts_fan_out(organization_ids=organization_ids)


@shared_task(name="contracts.quota_alerts_scan_task")
def quota_alerts_scan_task() -> int:
    organization_ids = list(Organization.objects.order_by("pk").values_list("pk", flat=True))
    for organization_id in organization_ids:
        quota_alerts_task.delay(organization_id)
    return len(organization_ids)
