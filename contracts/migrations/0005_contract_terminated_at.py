"""Contracts remember when they were terminated: usage is priced by the contract that was in
force at the time, so a terminated contract still prices the days before its termination."""

from django.db import migrations, models


def backfill(apps, schema_editor):
    """Take the instant from the audit row of the active -> terminated move."""
    Contract = apps.get_model("contracts", "Contract")
    AuditEvent = apps.get_model("accounts", "AuditEvent")
    for contract in Contract.all_objects.filter(status="terminated"):
        event = (
            AuditEvent.all_objects.filter(
                action="contract.status_changed",
                target_type="contracts.Contract",
                target_id=str(contract.pk),
                changes__from="active",
                changes__to="terminated",
            )
            .order_by("created_at")
            .first()
        )
        if event is not None:
            contract.terminated_at = event.created_at
            contract.save(update_fields=["terminated_at"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("contracts", "0004_quota_alert_state"),
    ]

    operations = [
        migrations.AddField(
            model_name="contract",
            name="terminated_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
