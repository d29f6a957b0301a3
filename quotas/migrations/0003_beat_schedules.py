"""Beat schedules of the workflow scans (django-celery-beat stores them in the database)."""

from django.db import migrations

SCHEDULES = {
    # name: (task, minutes between runs)
    "quotas: activate and complete reservations": ("quotas.reservations_due_task", 1),
    "quotas: expire undecided requests and lapsed offers": ("quotas.requests_expiry_task", 1),
    "quotas: decision reminders and escalation": ("quotas.requests_due_task", 5),
    "quotas: offer freed capacity to the waitlist": ("quotas.waitlist_scan_task", 5),
    "quotas: re-dispatch stuck checks": ("quotas.requests_sweep_task", 2),
}


def create_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, (task, minutes) in SCHEDULES.items():
        interval, _ = IntervalSchedule.objects.get_or_create(every=minutes, period="minutes")
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "interval": interval, "enabled": True}
        )


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=list(SCHEDULES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("quotas", "0002_requests"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
