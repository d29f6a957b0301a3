"""python manage.py rebuild_usage_rollups"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from usage.services import usage_rollups_rebuild


class Command(BaseCommand):
    help = "Recompute the daily and monthly usage rollups from the hourly records."

    def handle(self, *args, **options):
        counts = usage_rollups_rebuild()
        self.stdout.write(f"{counts['daily']} daily and {counts['monthly']} monthly rollup rows.")
