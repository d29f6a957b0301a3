"""Beat schedules of the contract scans (django-celery-beat stores them in the database)."""

from django.db import migrations

CLOSE = "contracts: issue last month's statements"
ALERTS = "contracts: spend alerts"


def create_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    nightly, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="2", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.update_or_create(
        name=CLOSE, defaults={"task": "contracts.statements_close_task", "crontab": nightly}
    )
    PeriodicTask.objects.update_or_create(
        name=ALERTS, defaults={"task": "contracts.spend_alerts_scan_task", "interval": hourly}
    )


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[CLOSE, ALERTS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("contracts", "0002_documents_statements_alerts"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
