"""Every write about contracts: status, documents, issuing statements and spend alerts."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, Organization, Role, User
from accounts.services import audit_record
from portal.errors import DomainError

from .charges import lines_total, month_start, next_month, utc_midnight
from .models import Contract, ContractDocument, SpendAlertState, Statement, StatementLine
from .selectors.spend import contract_burn_down
from .selectors.statements import hours_decimal, statement_compute
from .signals import spend_alert_fired
from .workflow import contract_require_transition

logger = logging.getLogger(__name__)

# --- Status --------------------------------------------------------------------------------


@transaction.atomic
def contract_status_set(
    *, contract: Contract, status: str, actor: User | None, reason: str = ""
) -> Contract:
    """Move a contract to ``status`` along the legal transitions (``contracts.workflow``)."""
    contract = Contract.all_objects.select_for_update().get(pk=contract.pk)
    contract_require_transition(contract.status, status)
    previous, contract.status = contract.status, status
    if status == Contract.Status.ACTIVE:
        try:
            contract.clean()  # no overlapping active contract
        except ValidationError as exc:
            field, messages = next(iter(exc.message_dict.items()))
            raise DomainError(messages[0], field=field) from None
    update_fields = ["status"]
    if previous == Contract.Status.ACTIVE and status == Contract.Status.TERMINATED:
        contract.terminated_at = timezone.now()
        update_fields.append("terminated_at")
    contract.save(update_fields=update_fields)
    audit_record(
        organization=contract.organization,
        actor=actor,
        action="contract.status_changed",
        target=contract,
        changes={"from": previous, "to": status, "reason": reason},
    )
    return contract


def contract_expire_due(*, today: date | None = None) -> int:
    """Active contracts whose term has ended become expired. Idempotent; returns how many."""
    today = today or timezone.now().date()
    due = list(
        Contract.objects.unscoped_for_staff()
        .filter(status=Contract.Status.ACTIVE, term_end__lte=today)
        .values_list("pk", flat=True)
    )
    moved = 0
    for pk in due:
        with transaction.atomic():
            contract = Contract.all_objects.select_for_update().get(pk=pk)
            if contract.status != Contract.Status.ACTIVE or contract.term_end > today:
                continue
            contract.status = Contract.Status.EXPIRED
            contract.save(update_fields=["status"])
            audit_record(
                organization=contract.organization,
                actor=None,
                action="contract.status_changed",
                target=contract,
                changes={"from": "active", "to": "expired", "reason": "term ended"},
            )
            moved += 1
    return moved


# --- Documents -----------------------------------------------------------------------------

# Magic bytes of the file types a contract document may be.
DOCUMENT_SIGNATURES = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}


def document_content_type(head: bytes) -> str | None:
    """The document's type from its first bytes (never from its name or the browser's say)."""
    for content_type, signatures in DOCUMENT_SIGNATURES.items():
        if any(head.startswith(signature) for signature in signatures):
            return content_type
    return None


@transaction.atomic
def contract_document_add(
    *,
    contract: Contract,
    uploaded_file: File,
    title: str,
    kind: str,
    actor: User | None,
) -> ContractDocument:
    """Store a document of ``contract`` (PDF, PNG or JPEG, at most
    ``CONTRACT_DOCUMENT_MAX_BYTES``) in the default storage. Refused with nothing stored when
    its type or size is wrong."""
    title = (title or "").strip()
    if not title:
        raise DomainError("Give the document a title.", field="title")
    if kind not in ContractDocument.Kind.values:
        raise DomainError(
            f"Choose one of: {', '.join(ContractDocument.Kind.labels)}.", field="kind"
        )
    limit = settings.CONTRACT_DOCUMENT_MAX_BYTES
    size = uploaded_file.size
    if size is None or size > limit:
        raise DomainError(
            f"The file is {_mib(size or 0)}; documents may be at most {_mib(limit)}.",
            field="file",
        )
    if size == 0:
        raise DomainError("The file is empty.", field="file")
    uploaded_file.seek(0)
    content_type = document_content_type(uploaded_file.read(16))
    uploaded_file.seek(0)
    if content_type is None:
        raise DomainError(
            "Only PDF, PNG and JPEG files can be attached (judged by the file's content).",
            field="file",
        )
    document = ContractDocument(
        organization_id=contract.organization_id,
        contract=contract,
        title=title[:200],
        kind=kind,
        content_type=content_type,
        size=size,
        uploaded_by=actor if actor is not None and actor.is_authenticated else None,
    )
    # Stored last, once everything is checked; a failed insert removes it again (a later
    # rollback of the caller's transaction leaves an unreferenced file, never a broken row).
    document.file.save(getattr(uploaded_file, "name", "") or "document", uploaded_file, save=False)
    try:
        with transaction.atomic():
            document.save()
    except Exception:
        default_storage.delete(document.file.name)
        raise
    audit_record(
        organization=contract.organization,
        actor=actor,
        action="contract.document_added",
        target=contract,
        changes={"document": document.pk, "title": document.title, "size": size},
    )
    return document


def _mib(size: int) -> str:
    return f"{Decimal(size) / (1024 * 1024):.1f} MiB"


# --- Statements ----------------------------------------------------------------------------


@transaction.atomic
def statement_issue(
    *,
    organization: Organization,
    month: date,
    actor: User | None = None,
    now: datetime | None = None,
) -> tuple[Statement, bool]:
    """Close ``month``: freeze its lines (charges of the month, and adjustments of earlier
    issued months) and totals. Idempotent: an issued month is returned as it is, with False.
    Only a month that has ended can be issued."""
    now = now or timezone.now()
    month = month_start(month)
    if utc_midnight(next_month(month)) > now:
        raise DomainError(
            f"{month:%B %Y} has not ended yet; it can be issued from {next_month(month):%Y-%m-%d}.",
            field="month",
        )
    # One issuer at a time per organization: adjustments read the statements issued before.
    Organization.objects.select_for_update().get(pk=organization.pk)
    existing = Statement.objects.for_organization(organization).filter(month=month).first()
    if existing is not None:
        return existing, False
    lines, adjustments = statement_compute(organization=organization, month=month, now=now)
    usage_total = lines_total(line for line in lines if line.kind == StatementLine.Kind.USAGE)
    reservation_total = lines_total(
        line for line in lines if line.kind == StatementLine.Kind.RESERVATION
    )
    adjustment_total = lines_total(adjustments)
    from .selectors.statements import statement_currency

    statement = Statement.all_objects.create(
        organization=organization,
        month=month,
        currency=statement_currency(organization),
        usage_total=usage_total,
        reservation_total=reservation_total,
        adjustment_total=adjustment_total,
        total=usage_total + reservation_total + adjustment_total,
        issued_at=now,
        issued_by=actor,
    )
    StatementLine.all_objects.bulk_create(
        StatementLine(
            organization=organization,
            statement=statement,
            kind=line.kind,
            adjusts=line.adjusts,
            period=line.period,
            sku_id=line.sku_id,
            region_id=line.region_id,
            reservation_id=line.reservation_id,
            gpu_hours=hours_decimal(line.gpu_hours),
            rate_per_gpu_hour=line.rate,
            price_source=line.price_source,
            contract_id=line.contract_id,
            amount=line.amount,
        )
        for line in [*lines, *adjustments]
    )
    audit_record(
        organization=organization,
        actor=actor,
        action="statement.issued",
        target=statement,
        changes={"month": f"{month:%Y-%m}", "total": str(statement.total)},
    )
    return statement, True


def statement_month_to_issue(*, now: datetime | None = None) -> date:
    """The month the closing scan issues: the last one that has ended."""
    now = now or timezone.now()
    return month_start(month_start(now.date()) - timedelta(days=1))


# --- Spend alerts --------------------------------------------------------------------------

CONSUMED_THRESHOLDS = {
    SpendAlertState.Kind.CONSUMED_50: Decimal("50"),
    SpendAlertState.Kind.CONSUMED_80: Decimal("80"),
    SpendAlertState.Kind.CONSUMED_100: Decimal("100"),
}


def _billing_recipients(organization: Organization) -> list[User]:
    people = [
        membership.user
        for membership in Membership.objects.for_organization(organization)
        .filter(
            role__in=[Role.OWNER, Role.ADMIN, Role.BILLING],
            user__is_active=True,
        )
        .select_related("user")
    ]
    if organization.account_manager_id:
        people.append(organization.account_manager)
    return people


@transaction.atomic
def contract_spend_alerts_evaluate(*, contract: Contract, now: datetime | None = None) -> list[str]:
    """Fire each spend alert of ``contract`` whose figure has crossed its threshold since it
    last fired, and re-arm those whose figure fell back below. Returns the kinds fired.

    Consumed share of the commitment: 50, 80 and 100 %. Forecast under-use: the projected
    unused commitment at term end is at least ``CONTRACT_UNDERUSE_ALERT_PERCENT`` % of it
    (judged only once ``CONTRACT_UNDERUSE_ALERT_AFTER_DAYS`` of the term have passed, when
    a run rate means something).
    """
    now = now or timezone.now()
    contract = (
        Contract.all_objects.select_for_update(of=("self",))
        .select_related("organization__account_manager")
        .get(pk=contract.pk)
    )
    if contract.status != Contract.Status.ACTIVE or not contract.committed_spend:
        return []
    burn = contract_burn_down(contract=contract, now=now)
    share = burn.consumed * 100 / contract.committed_spend
    underuse_share = burn.projected_underuse * 100 / contract.committed_spend
    term_days = (now.date() - contract.term_start).days
    figures = {kind: (share, share >= threshold) for kind, threshold in CONSUMED_THRESHOLDS.items()}
    if term_days >= settings.CONTRACT_UNDERUSE_ALERT_AFTER_DAYS:
        figures[SpendAlertState.Kind.FORECAST_UNDERUSE] = (
            underuse_share,
            underuse_share >= Decimal(settings.CONTRACT_UNDERUSE_ALERT_PERCENT),
        )
    states = {
        state.kind: state
        for state in SpendAlertState.all_objects.select_for_update().filter(contract=contract)
    }
    fired = []
    for kind, (value, crossed) in figures.items():
        state = states.get(kind)
        if state is None:
            state = SpendAlertState.all_objects.create(
                organization_id=contract.organization_id, contract=contract, kind=kind
            )
        state.last_value = value.quantize(Decimal("0.01"))
        if crossed and not state.fired:
            state.fired, state.fired_at = True, now
            state.fire_count += 1
            _spend_alert_publish(contract, state, burn)
            fired.append(kind)
        elif not crossed and state.fired:
            state.fired, state.rearmed_at = False, now
        state.save()
    return fired


def _spend_alert_publish(contract: Contract, state: SpendAlertState, burn) -> None:
    from notifications.services import notification_publish
    from webhooks.services import webhook_event_publish

    organization = contract.organization
    if state.kind == SpendAlertState.Kind.FORECAST_UNDERUSE:
        event = "contract.underuse_forecast"
        title = f"{contract.number}: commitment forecast to be under-used"
        body = burn.summary
    else:
        event = "contract.spend_threshold"
        title = f"{contract.number}: {state.get_kind_display()}"
        body = (
            f"{burn.consumed:,} of {burn.committed:,} {burn.currency} committed is consumed "
            f"({burn.consumed_percent} %). {burn.summary}"
        )
    notification_publish(
        event=event,
        organization=organization,
        recipients=_billing_recipients(organization),
        title=title,
        body=body,
        url=f"/o/{organization.slug}/contracts/{contract.pk}/",
        dedupe_key=f"contract:{contract.pk}:{state.kind}:{state.fire_count}",
    )
    audit_record(
        organization=organization,
        actor=None,
        action="contract.spend_alert",
        target=contract,
        changes={"alert": state.kind, "value": str(state.last_value)},
    )
    payload = {
        "contract_id": contract.pk,
        "contract_number": contract.number,
        "alert": state.kind,
        "value": str(state.last_value),
        "consumed": str(burn.consumed),
        "committed": str(burn.committed),
        "forecast_at_term_end": str(burn.forecast_at_term_end),
    }
    webhook_event_publish(
        organization=organization,
        event_type=event,
        data=payload,
        event_id=f"contract:{contract.pk}:{state.kind}:{state.fire_count}",
    )
    transaction.on_commit(
        lambda: spend_alert_fired.send(
            sender=Contract, organization=organization, event=event, payload=payload
        ),
        robust=True,
    )


def alerts_after_usage_ingest(*, organization_ids: list[int]) -> None:
    """Call inside the usage ingest's transaction: once it commits, one task fans out the
    re-evaluation of the organizations' alerts (``alerts_fan_out``). A batch names hundreds of
    organizations; a message per organization sent from the request kept the metering sender
    waiting for hundreds of broker round trips after its rows were stored."""
    from .tasks import usage_ingest_alerts_task

    ids = sorted(set(organization_ids))
    if ids:
        transaction.on_commit(lambda: usage_ingest_alerts_task.delay(ids), robust=True)


def alerts_fan_out(*, organization_ids: list[int]) -> int:
    """Enqueue the spend alerts of the organizations' active contracts and their quota
    utilization alerts, one idempotent task each (so one failing evaluation is retried alone).
    Returns the number of tasks sent."""
    from .tasks import contract_spend_alerts_task, quota_alerts_task

    contract_ids = list(
        Contract.objects.unscoped_for_staff()
        .filter(organization_id__in=organization_ids, status=Contract.Status.ACTIVE)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for contract_id in contract_ids:
        contract_spend_alerts_task.delay(contract_id)
    for organization_id in organization_ids:
        quota_alerts_task.delay(organization_id)
    return len(contract_ids) + len(organization_ids)
