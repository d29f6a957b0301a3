"""Beat schedules of the notification scans (django-celery-beat stores them in the database)."""

from django.db import migrations

SWEEP = "notifications: re-send lost e-mails"
DIGEST = "notifications: daily digest"


def create_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_5_min, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    daily, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="7", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.update_or_create(
        name=SWEEP,
        defaults={"task": "notifications.email_sweep_task", "interval": every_5_min},
    )
    PeriodicTask.objects.update_or_create(
        name=DIGEST,
        defaults={"task": "notifications.daily_digest_task", "crontab": daily},
    )


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[SWEEP, DIGEST]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
