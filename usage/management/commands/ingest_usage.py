"""python manage.py ingest_usage FILE [--format json|ndjson|csv] [--source LABEL]"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.errors import DomainError
from usage.parsers import FORMATS
from usage.services import UsageBatchRejected, usage_ingest

SUFFIX_FORMATS = {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}


class Command(BaseCommand):
    help = "Ingest a file of hourly usage records (the same path as POST /api/v1/usage/ingest)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to the batch, or - for standard input.")
        parser.add_argument("--format", choices=FORMATS, help="Default: from the file suffix.")
        parser.add_argument("--source", help="Source of records that name none.")

    def handle(self, *args, **options):
        name = options["file"]
        fmt = options["format"] or SUFFIX_FORMATS.get(Path(name).suffix.lower())
        if fmt is None:
            raise CommandError("Cannot tell the format from the file name: pass --format.")
        try:
            stream = sys.stdin.buffer if name == "-" else Path(name).open("rb")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(str(exc)) from None
        try:
            result = usage_ingest(stream=stream, content_type=fmt, source_label=options["source"])
        except UsageBatchRejected as exc:
            self.stderr.write(exc.message)
            for error in exc.errors:
                self.stderr.write(json.dumps(error))
            raise CommandError(f"{exc.error_count} error(s); nothing was written.") from None
        except DomainError as exc:
            raise CommandError(exc.message) from None
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        self.stdout.write(json.dumps(result.as_dict()))
