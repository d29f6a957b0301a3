"""Load the demo data: idempotent and deterministic, so running it twice changes nothing."""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.module_loading import import_string


class Command(BaseCommand):
    help = "Create the demo organizations, users, catalog, contracts, requests and usage."

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            for dotted in settings.DEMO_SEEDERS:
                seeder = import_string(dotted)
                summary = seeder()
                self.stdout.write(f"{dotted}: {summary or 'ok'}")
        self.stdout.write(self.style.SUCCESS("Demo data is in place."))
