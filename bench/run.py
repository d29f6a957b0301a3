"""`make bench`: seed (or reuse) the scale data, start the production stack on loopback, drive it
with locust, measure each figure beside its reference in the same run, print one table and
write it as JSON under bench/results/.

    python -m bench.run [--quick] [--only list,history,ingest,submit,availability,fleet,pages]

References: R0 the same JSON body as the API list from a view without ORM or auth (same
gunicorn, same middleware); R1 psycopg COPY of the same CSV bytes; R2 Django bulk_create of the
same rows in batches of 1,000, each committed; R3 the fleet-wide 12-month usage by SKU from the
raw hourly table; R4 a no-op Celery task round trip through the workflow queue.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import platform
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = BASE_DIR / "bench" / "results"
FIGURES = ("list", "history", "ingest", "submit", "availability", "fleet", "pages")
INGEST_BATCH_ROWS = 100_000
R2_BATCH_ROWS = 1_000
# How long the submit figure waits for the previous figures' tasks (the alert evaluations an
# ingest enqueues) to be done before it measures.
IDLE_WAIT_SECONDS = 300
QUICK_SIZES = {"orgs": 100, "requests": 20_000, "usage_rows": 1_000_000}


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Small data, short runs.")
    parser.add_argument("--only", default=",".join(FIGURES), help="Comma-separated figures.")
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
        help="Broker, results and cache of the stack (a Redis DB of its own).",
    )
    parser.add_argument("--seconds", type=int, default=0, help="Length of each locust run.")
    parser.add_argument("--ingest-rows", type=int, default=0, help="Rows ingested over HTTP.")
    parser.add_argument(
        "--submit-rate", type=float, default=20, help="Submissions per second (the target's: 20)."
    )
    parser.add_argument("--orgs", type=int)
    parser.add_argument("--requests", type=int)
    parser.add_argument("--usage-rows", type=int)
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(FIGURES)
    if unknown:
        parser.error(f"--only: unknown figures {sorted(unknown)}; choose from {FIGURES}")
    if not args.database_url:
        name = "portal_bench_quick" if args.quick else "portal_bench"
        args.database_url = os.environ.get(
            "BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{name}"
        )
    args.seconds = args.seconds or (10 if args.quick else 30)
    args.ingest_rows = args.ingest_rows or (300_000 if args.quick else 1_000_000)
    return args


def stack_environment(args: argparse.Namespace, run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "CACHE_KEY_PREFIX": f"bench-{os.getpid()}",
            "CELERY_BROKER_URL": args.redis_url,
            "CELERY_RESULT_BACKEND": args.redis_url,
            # Throttling stays on (every request counts in Redis) at a rate no run reaches.
            "API_THROTTLE_KEY_RATE": "10000000/minute",
            "STATIC_ROOT": str(BASE_DIR / "var" / "bench" / "staticfiles"),
            "PORTAL_VAR_DIR": str(BASE_DIR / "var" / "bench"),
            "BENCH_R0_BODY_FILE": str(run_dir / "r0-body.json"),
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def timed_ms(call, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def cpu_note(spent: dict[str, float], count: int, unit: str) -> str:
    """Where the CPU of ``count`` units of work went, in ms per unit, largest first."""
    if not count:
        return ""
    parts = sorted(spent.items(), key=lambda item: -item[1])
    shares = ", ".join(f"{name} {seconds * 1000 / count:.1f}" for name, seconds in parts)
    return f"CPU ms per {unit}: {shares}"


class Bench:
    def __init__(self, args: argparse.Namespace, env: dict[str, str], run_dir: Path):
        self.args = args
        self.env = env
        self.run_dir = run_dir
        self.figures = []
        self.meta: dict = {}
        self.stack = None

    # --- locust ---------------------------------------------------------------------------
    def locust(
        self,
        *,
        name: str,
        path: str,
        users: int,
        rate: float = 0,
        seconds: int | None = None,
        scenario: str = "get",
        token: str = "",
        extra: dict | None = None,
    ) -> dict:
        """Run locust headless against the stack; the aggregated row of its CSV stats."""
        prefix = self.run_dir / f"locust-{name}"
        env = {
            **self.env,
            "BENCH_SCENARIO": scenario,
            "BENCH_PATH": path,
            "BENCH_TOKEN": token,
            "BENCH_RATE": str(rate / users if rate else 0),
            **(extra or {}),
        }
        command = [
            str(BASE_DIR / ".venv" / "bin" / "locust"),
            "-f", str(BASE_DIR / "bench" / "locustfile.py"),
            "--headless", "--only-summary", "--loglevel", "WARNING",
            "--host", self.stack.base_url,
            "-u", str(users), "-r", str(users),
            "-t", f"{seconds or self.args.seconds}s",
            "--csv", str(prefix),
            "--exit-code-on-error", "0",
        ]  # fmt: skip
        with open(self.run_dir / f"locust-{name}.log", "wb") as log:
            subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)  # noqa: S603
        with open(f"{prefix}_stats.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        row = next(r for r in rows if r["Name"] == "Aggregated")
        if int(row["Failure Count"]):
            print(f"  {name}: {row['Failure Count']} failed requests, see {prefix}_failures.csv")

        def number(key: str) -> float:
            return float("nan") if row[key] == "N/A" else float(row[key])

        return {
            "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]),
            "rps": number("Requests/s"),
            "p50": number("50%"),
            "p95": number("95%"),
            "p99": number("99%"),
            "mean": number("Average Response Time"),
        }

    @contextlib.contextmanager
    def cpu_spent(self):
        """CPU seconds spent meanwhile by each part of the stack (``Stack.cpu_seconds``) and by
        the load generator (locust runs as this process's waited-for children)."""

        def reading() -> tuple[dict[str, float], dict[int, float]]:
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            groups = self.stack.cpu_seconds()
            groups["locust"] = children.ru_utime + children.ru_stime
            return groups, self.stack.backend_cpu_seconds()

        before, backends_before = reading()
        spent: dict[str, float] = {}
        yield spent
        after, backends_after = reading()
        spent.update({name: after[name] - before.get(name, 0.0) for name in after})
        # Pid by pid: a backend whose connection closed meanwhile (CONN_MAX_AGE) would otherwise
        # take its whole past CPU out of the sum. What it spent during the figure is lost.
        spent["postgresql"] = sum(
            seconds - backends_before.get(pid, 0.0) for pid, seconds in backends_after.items()
        )

    # --- set-up ---------------------------------------------------------------------------
    def prepare(self) -> None:
        from allauth.mfa.models import Authenticator
        from allauth.mfa.totp.internal.auth import TOTP
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        from accounts.apikeys import api_key_create_for_organization, api_key_create_for_provider
        from accounts.models import Organization, User
        from bench.seed import scale_seed_marker_get

        call_command("migrate", verbosity=0)
        seed_args = []
        for option in ("orgs", "requests", "usage_rows"):
            value = getattr(self.args, option)
            if value is None and self.args.quick:
                value = QUICK_SIZES[option]
            if value is not None:
                seed_args += [f"--{option.replace('_', '-')}", str(value)]
        call_command("seed_scale", *seed_args)
        if self._static_stale():
            call_command("collectstatic", interactive=False, verbosity=0)
        marker = scale_seed_marker_get()
        self.sizes = marker["sizes"]
        self.anchor = date.fromisoformat(self.sizes["anchor"])
        self.org = Organization.objects.get(slug="org-00001")
        self.owner = User.objects.get(email="owner-00001@scale.example")
        self.manager = User.objects.get(email="manager@scale.example")
        admin = User.objects.get(email="admin@scale.example")
        if not Authenticator.objects.filter(user=self.manager).exists():
            TOTP.activate(self.manager, "JBSWY3DPEHPK3PXP")
        self.org_key = api_key_create_for_organization(
            organization=self.org, name="benchmark", scopes=["read", "write"], created_by=self.owner
        ).key
        self.provider_key = api_key_create_for_provider(
            name="benchmark metering", scopes=["usage:ingest"], created_by=admin
        ).key
        # Submissions go to an organization of their own: repeated runs then leave the list, the
        # history and the dashboard of org-00001 as seeded.
        self.submit_org = Organization.objects.get(slug="org-00002")
        self.submit_key = api_key_create_for_organization(
            organization=self.submit_org,
            name="benchmark",
            scopes=["read", "write"],
            created_by=User.objects.get(email="owner-00002@scale.example"),
        ).key
        self.list_path = f"/api/v1/orgs/{self.org.slug}/requests/?page_size=50"
        response = Client().get(
            self.list_path, secure=True, HTTP_AUTHORIZATION=f"Bearer {self.org_key}"
        )
        assert response.status_code == 200, response.content[:500]
        Path(self.env["BENCH_R0_BODY_FILE"]).write_bytes(response.content)
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            pg_version = cursor.fetchone()[0]
        import psutil

        self.meta = {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "make bench BENCH_ARGS=" + repr(" ".join(sys.argv[1:])),
            "machine": {
                "cpus": os.cpu_count(),
                "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                "load_average": os.getloadavg(),
                "python": platform.python_version(),
                "postgresql": pg_version,
                "platform": platform.platform(),
            },
            "sizes": self.sizes,
            "seed_seconds": marker["seconds"],
            "locust_seconds_per_run": self.args.seconds,
            "body_bytes": len(response.content),
        }

    @staticmethod
    def _static_stale() -> bool:
        """Collecting (and compressing) static files takes a minute: only when they changed."""
        from django.conf import settings

        manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
        if not manifest.exists():
            return True
        built = manifest.stat().st_mtime
        sources = [BASE_DIR / "static", BASE_DIR / "assets" / "build"]
        return any(
            path.stat().st_mtime > built
            for folder in sources
            if folder.exists()
            for path in folder.rglob("*")
        )

    # --- figures --------------------------------------------------------------------------
    def figure_list(self) -> None:
        from bench.table import Figure

        users = 16
        with self.cpu_spent() as r0_spent:
            r0 = self.locust(name="r0-max", path="/bench/r0/", users=users)
        with self.cpu_spent() as spent:
            api = self.locust(name="list-max", path=self.list_path, users=users, token=self.org_key)
        half = api["rps"] / 2
        api_half = self.locust(
            name="list-half", path=self.list_path, users=8, rate=half, token=self.org_key
        )
        r0_half = self.locust(name="r0-half", path="/bench/r0/", users=8, rate=half)
        self.figures += [
            Figure(
                "list requests (page of 50, API key, throttling on) max",
                api["rps"], "req/s", "R0 max", r0["rps"], ">= 0.30x R0", min_ratio=0.30,
                extra={"api": api, "r0": r0, "cpu_seconds": spent, "r0_cpu_seconds": r0_spent},
                note=f"{cpu_note(spent, api['requests'], 'list request')}; R0 "
                f"{cpu_note(r0_spent, r0['requests'], 'request')}",
            ),
            Figure(
                f"same endpoint p99 at {half:.0f} req/s (half its max)",
                api_half["p99"], "ms", "R0 p99, same rate", r0_half["p99"], "<= 60 ms",
                max_value=60, extra={"api": api_half, "r0": r0_half},
            ),
        ]  # fmt: skip

    def figure_history(self) -> None:
        from bench.table import Figure

        start = (self.anchor.replace(day=1) - timedelta(days=365)).replace(day=1)
        path = (
            f"/api/v1/orgs/{self.org.slug}/usage/aggregate/?granularity=month&group_by=sku"
            f"&from={start.isoformat()}&to={self.anchor.replace(day=1).isoformat()}"
        )
        rate, users = 20, 4
        api = self.locust(name="history", path=path, users=users, rate=rate, token=self.org_key)
        r0 = self.locust(name="history-r0", path="/bench/r0/", users=users, rate=rate)
        self.figures.append(
            Figure(
                f"one org's 12-month usage history over HTTP p95 ({rate} req/s)",
                api["p95"], "ms", "R0 p95, same rate", r0["p95"], "<= 30 ms", max_value=30,
                extra={"api": api, "r0": r0, "path": path},
            )
        )  # fmt: skip

    def _ingest_batches(self, folder: Path) -> list[Path]:
        """CSV batches of new keys: hours after the newest hour already stored."""
        from quotas.models import GpuSku
        from usage.models import UsageRecord

        newest = UsageRecord.all_objects.order_by("-hour").values_list("hour", flat=True).first()
        first_hour = (newest or datetime(2026, 1, 1, tzinfo=UTC)) + timedelta(hours=1)
        orgs = min(100, self.sizes["orgs"])
        skus = list(GpuSku.objects.order_by("pk").values_list("code", flat=True))
        batches = []
        per_batch_hours = INGEST_BATCH_ROWS // orgs
        for number in range(self.args.ingest_rows // INGEST_BATCH_ROWS):
            out = io.StringIO()
            out.write("organization,sku,region,hour,gpu_hours,mean_utilization\n")
            for j in range(INGEST_BATCH_ROWS):
                hour = first_hour + timedelta(hours=number * per_batch_hours + j // orgs)
                out.write(
                    f"org-{j % orgs + 1:05d},{skus[j % len(skus)]},dc-01,"
                    f"{hour:%Y-%m-%dT%H:00:00Z},{(j % 640) / 10:.4f},0.{j % 10000:04d}\n"
                )
            path = folder / f"batch-{number:03d}.csv"
            path.write_text(out.getvalue())
            batches.append(path)
        return batches

    def _copy_reference(self, batch: Path) -> float:
        """R1: rows/s of psycopg COPY of the same CSV bytes into a table shaped like the
        usage table (keys as the CSV carries them)."""
        from django.db import connection, transaction

        data = batch.read_bytes()
        rows = data.count(b"\n") - 1
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE bench_copy_target (organization text, sku text, region text, "
                "hour timestamptz, gpu_hours numeric(12, 4), mean_utilization numeric(5, 4)) "
                "ON COMMIT DROP"
            )
            started = time.perf_counter()
            with cursor.connection.cursor().copy(
                "COPY bench_copy_target FROM STDIN WITH (FORMAT csv, HEADER true)"
            ) as copy:
                copy.write(data)
            elapsed = time.perf_counter() - started
        return rows / elapsed

    def _bulk_create_reference(self, batch: Path) -> float:
        """R2: rows/s of a naive ORM ingest of the same rows (ids resolved): one bulk_create per
        1,000 rows, each committed on its own as autocommit does, so that it pays for its
        writes (index insertions, the WAL flush of each commit) as a real ingest does. The rows
        are deleted afterwards, outside the timing."""
        from decimal import Decimal

        from django.db import connection

        from accounts.models import Organization
        from quotas.models import GpuSku, Region
        from usage.models import UsageRecord

        if not connection.get_autocommit() or connection.in_atomic_block:
            raise RuntimeError("R2 must commit each batch: call it outside any transaction")
        orgs = dict(Organization.objects.values_list("slug", "pk"))
        skus = dict(GpuSku.objects.values_list("code", "pk"))
        regions = dict(Region.objects.values_list("code", "pk"))
        with open(batch, newline="") as handle:
            rows = list(csv.DictReader(handle))
        written: list[int] = []
        try:
            started = time.perf_counter()
            for first in range(0, len(rows), R2_BATCH_ROWS):
                created = UsageRecord.all_objects.bulk_create(
                    [
                        UsageRecord(
                            organization_id=orgs[row["organization"]],
                            sku_id=skus[row["sku"]],
                            region_id=regions[row["region"]],
                            hour=datetime.fromisoformat(row["hour"]),
                            gpu_hours=Decimal(row["gpu_hours"]),
                            mean_utilization=Decimal(row["mean_utilization"]),
                            source="benchmark-r2",
                        )
                        for row in rows[first : first + R2_BATCH_ROWS]
                    ]
                )
                written += [record.pk for record in created]
            elapsed = time.perf_counter() - started
        finally:
            # The HTTP ingest then posts the same batch: these rows must be gone first.
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM usage_usagerecord WHERE id = ANY(%s)", [written])
        return len(rows) / elapsed

    def figure_ingest(self) -> None:
        from bench.table import Figure

        folder = self.run_dir / "ingest"
        folder.mkdir(exist_ok=True)
        batches = self._ingest_batches(folder)
        r1 = self._copy_reference(batches[0])
        r2 = self._bulk_create_reference(batches[0])
        idle = self.stack.web_worker_rss()
        peaks = dict(idle)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for pid, rss in self.stack.web_worker_rss().items():
                    peaks[pid] = max(peaks.get(pid, 0), rss)
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with self.cpu_spent() as spent:
            try:
                result = self.locust(
                    name="ingest", path="/api/v1/usage/ingest", users=1, scenario="ingest",
                    token=self.provider_key, seconds=3600, extra={"BENCH_INGEST_DIR": str(folder)},
                )  # fmt: skip
            finally:
                stop.set()
                sampler.join()
        rows_per_second = INGEST_BATCH_ROWS / (result["mean"] / 1000) if result["mean"] else 0
        if result["failures"]:
            rows_per_second = 0.0
        worker = max(idle, key=lambda pid: peaks[pid] / idle[pid]) if idle else None
        mib = 2**20
        rows = len(batches) * INGEST_BATCH_ROWS
        thousands = result["requests"] * INGEST_BATCH_ROWS // 1000
        self.figures += [
            Figure(
                "HTTP usage ingest, 100k-row CSV batches (upsert + rollups)",
                rows_per_second, "rows/s", "R1 COPY", r1, ">= 0.25x R1", min_ratio=0.25,
                extra={"locust": result, "batches": len(batches), "cpu_seconds": spent},
                note=f"{result['requests']} batches timed by locust, mean {result['mean']:.0f} ms"
                f"; {cpu_note(spent, thousands, '1,000 rows')}",
            ),
            Figure(
                "HTTP usage ingest (same run)", rows_per_second, "rows/s",
                "R2 bulk_create", r2, ">= 4x R2", min_ratio=4,
            ),
            Figure(
                f"web worker peak RSS ingesting {rows:,} rows",
                peaks[worker] / mib if worker else None, "MiB", "its idle RSS",
                idle[worker] / mib if worker else None, "<= 2x idle", max_ratio=2,
            ),
        ]  # fmt: skip

    def figure_submit(self) -> None:
        from celery import current_app

        from bench.table import Figure
        from quotas.models import CapacityPool, CapacityRequest
        from quotas.workflow import RequestState

        # The previous figures' tasks (an ingest enqueues hundreds of alert evaluations) must not
        # be what R4 and the checks measure: wait, bounded, for every queue to be idle.
        idle = self.stack.broker_wait_idle(timeout=IDLE_WAIT_SECONDS)
        ping = current_app.tasks["portal.ping_task"]
        ping.delay().get(timeout=30)
        r4 = timed_ms(lambda: ping.delay().get(timeout=30), 100)
        pool = CapacityPool.objects.select_related("sku", "region").get(pk=2)
        again = self.stack.broker_wait_idle(timeout=60)
        began = datetime.now(UTC)
        rate = self.args.submit_rate
        pending = {RequestState.SUBMITTED, RequestState.CHECKING}
        submitted = CapacityRequest.objects.for_organization(self.submit_org).filter(
            justification__startswith="benchmark ", created_at__gte=began
        )
        # The CPU of the submissions and of everything they set off, until the checks are done
        # and the tasks they enqueued (e-mail, webhooks) have run.
        with self.cpu_spent() as spent:
            result = self.locust(
                name="submit", path=f"/api/v1/orgs/{self.submit_org.slug}/requests/",
                users=10, rate=rate, scenario="submit", token=self.submit_key,
                extra={"BENCH_SKU": pool.sku.code, "BENCH_REGION": pool.region.code},
            )  # fmt: skip
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and submitted.filter(state__in=pending).exists():
                time.sleep(0.5)
            after = self.stack.broker_wait_idle(timeout=60)
        latencies = [
            (changed - at).total_seconds() * 1000
            for at, changed in submitted.exclude(state__in=pending).values_list(
                "submitted_at", "state_changed_at"
            )
        ]
        unfinished = submitted.filter(state__in=pending).count()
        extra = {
            "locust": result,
            "done": len(latencies),
            "unfinished": unfinished,
            "idle_before_r4": {"seconds": idle.seconds, "left": idle.left},
            "idle_before_submit": {"seconds": again.seconds, "left": again.left},
            "idle_after_submit": {"seconds": after.seconds, "left": after.left},
            "cpu_seconds": spent,
        }
        served = (
            f"{result['rps']:.1f} of {rate:g} submissions/s accepted; before R4 {idle.note}, "
            f"before the submissions {again.note}"
        )
        self.figures += [
            Figure(
                f"submit -> automatic checks done p50 ({rate:g} submissions/s)",
                percentile(latencies, 50) if latencies else None, "ms", "R4 Celery no-op p50",
                percentile(r4, 50), "<= 150 ms", max_value=150, extra=extra, note=served,
            ),
            Figure(
                "submit -> automatic checks done p99", percentile(latencies, 99)
                if latencies else None, "ms", "R4 Celery no-op p99", percentile(r4, 99),
                "<= 500 ms", max_value=500,
                note="; ".join(
                    part for part in (
                        f"{unfinished} not done after 60 s" if unfinished else "",
                        cpu_note(spent, result["requests"], "submission"),
                    ) if part
                ),
            ),
        ]  # fmt: skip

    def figure_availability(self) -> None:
        from bench.table import Figure
        from quotas.api.requests import EARLIEST_START_HORIZON
        from quotas.models import CapacityHold, CapacityPool
        from quotas.selectors import availability

        pool = CapacityPool.objects.select_related("sku").get(pk=1)
        holds = CapacityHold.all_objects.filter(pool=pool).count()
        starts = datetime.combine(self.anchor, datetime.min.time(), UTC)
        ends = starts + timedelta(days=14)

        def ask() -> None:
            availability.pool_availability(
                pool=pool,
                gpu_count=512,
                starts_at=starts,
                ends_at=ends,
                horizon=EARLIEST_START_HORIZON,
            )

        ask()
        samples = timed_ms(ask, 50)
        ref = timed_ms(lambda: CapacityPool.objects.filter(pk=1).exists(), 50)
        self.figures.append(
            Figure(
                f"availability, pool with {holds:,} holds, p95 in process",
                percentile(samples, 95), "ms", "primary-key SELECT p95", percentile(ref, 95),
                "<= 10 ms", max_value=10,
                note="free minimum + earliest start + other regions, as the API answers",
            )
        )  # fmt: skip

    def figure_fleet(self) -> None:
        from django.db import connection

        from bench.table import Figure
        from usage.selectors import usage_fleet_by_sku

        end = self.anchor.replace(day=1)
        start = (end - timedelta(days=365)).replace(day=1)
        usage_fleet_by_sku(start=start, end=end)
        fleet = timed_ms(lambda: usage_fleet_by_sku(start=start, end=end), 10)

        def raw() -> None:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT sku_id, sum(gpu_hours), count(DISTINCT organization_id) "
                    "FROM usage_usagerecord WHERE hour >= %s AND hour < %s GROUP BY sku_id",
                    [start, end],
                )
                cursor.fetchall()

        r3 = timed_ms(raw, 3)
        self.figures.append(
            Figure(
                "fleet-wide 12-month usage by SKU (staff), median",
                statistics.median(fleet), "ms", "R3 raw hourly aggregate", statistics.median(r3),
                "<= 0.02x R3 (50x faster)", max_ratio=0.02,
            )
        )  # fmt: skip

    def figure_pages(self) -> None:
        from django.test import Client

        from bench.table import Figure

        owner, manager = Client(), Client()
        owner.force_login(self.owner)
        manager.force_login(self.manager)
        pages = [
            ("customer dashboard", owner, f"/o/{self.org.slug}/"),
            ("approvals inbox (staff)", manager, "/staff/approvals/"),
        ]
        for label, client, path in pages:
            response = client.get(path, secure=True)
            assert response.status_code == 200, (path, response.status_code)
            samples = timed_ms(lambda c=client, p=path: c.get(p, secure=True), 30)
            self.figures.append(
                Figure(
                    f"{label}, server time p95", percentile(samples, 95), "ms", "", None,
                    "<= 100 ms", max_value=100, note=f"GET {path} in process",
                )
            )  # fmt: skip


def database_ensure(url: str) -> None:
    """Create the benchmark database when it does not exist (never touches another one)."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main(argv: list[str]) -> int:
    args = arguments(argv)
    database_ensure(args.database_url)
    run_dir = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    env = stack_environment(args, run_dir)
    os.environ.update(env)
    import django

    django.setup()
    from bench.stack import Stack
    from bench.table import results_write, table_notes, table_text

    bench = Bench(args, env, run_dir)
    print(f"Seeding or reusing {args.database_url.rsplit('/', 1)[-1]} ...", flush=True)
    bench.prepare()
    bench.stack = Stack(env=env, log_dir=run_dir)
    print(f"Starting gunicorn and the Celery workers (logs in {run_dir}) ...", flush=True)
    bench.stack.start()
    try:
        for name in FIGURES:
            if name in args.only:
                print(f"Measuring {name} ...", flush=True)
                getattr(bench, f"figure_{name}")()
    finally:
        bench.stack.stop()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = results_write(
        figures=bench.figures, meta=bench.meta, path=RESULTS_DIR / f"bench-{stamp}.json"
    )
    print()
    print(table_text(bench.figures))
    notes = table_notes(bench.figures)
    if notes:
        print(f"\n{notes}")
    print(f"\nWritten to {path.relative_to(BASE_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
