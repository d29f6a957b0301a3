"""Generate (or reuse) the fleet-scale data set in a dedicated database."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from bench.seed import ScaleSizes, scale_seed, scale_seed_marker_get

# Seeding empties every portal table: only databases named for it are accepted.
DEDICATED_PREFIXES = ("portal_bench", "test_")


class Command(BaseCommand):
    help = (
        "Fleet-scale data generated inside PostgreSQL (default: 1,000 organizations, 20 regions "
        "x 8 SKUs, 100,000 requests, 20 million hourly usage rows). Empties the portal tables of "
        "a dedicated database (portal_bench*); reused when already seeded at the same sizes."
    )

    def add_arguments(self, parser):
        defaults = ScaleSizes()
        parser.add_argument("--orgs", type=int, default=defaults.orgs)
        parser.add_argument("--regions", type=int, default=defaults.regions)
        parser.add_argument("--skus", type=int, default=defaults.skus)
        parser.add_argument("--requests", type=int, default=defaults.requests)
        parser.add_argument("--usage-rows", type=int, default=defaults.usage_rows)
        parser.add_argument(
            "--hot-pool-reservations",
            type=int,
            default=defaults.hot_pool_reservations,
            help="Reservations and offers held in pool 1 (the availability benchmark's pool).",
        )
        parser.add_argument(
            "--anchor",
            type=date.fromisoformat,
            default=defaults.anchor,
            help="Usage covers the 12 months before this date; states are as of this date.",
        )
        parser.add_argument("--force", action="store_true", help="Seed even if already seeded.")

    def handle(self, *args, **options):
        name = connection.settings_dict["NAME"]
        if not name.startswith(DEDICATED_PREFIXES):
            raise CommandError(
                f"seed_scale empties every portal table; the database {name!r} is not a "
                "dedicated one (portal_bench...). Set DATABASE_URL to e.g. "
                "postgres://postgres@127.0.0.1:5432/portal_bench."
            )
        sizes = ScaleSizes(
            orgs=options["orgs"],
            regions=options["regions"],
            skus=options["skus"],
            requests=options["requests"],
            usage_rows=options["usage_rows"],
            hot_pool_reservations=options["hot_pool_reservations"],
            anchor=options["anchor"],
        )
        if sizes.regions * sizes.skus < 2 or min(sizes.orgs, sizes.requests) < 1:
            raise CommandError("Give at least 2 pools (--regions x --skus), 1 org and 1 request.")
        marker = scale_seed_marker_get()
        if marker and marker["sizes"] == sizes.as_dict() and not options["force"]:
            self.stdout.write(
                f"Scale data already seeded at these sizes in {name} "
                f"({marker['seconds']} s when seeded); reusing it."
            )
            return
        self.stdout.write(f"Seeding {name}: {sizes.as_dict()}")
        timings = scale_seed(sizes=sizes, log=self.stdout.write)
        self.stdout.write(f"Seeded in {timings['total']} s.")
