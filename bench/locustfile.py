"""Load shapes of the benchmark, chosen by environment variables set by bench/run.py.

BENCH_SCENARIO: ``get`` (GET BENCH_PATH), ``submit`` (POST a reservation request to
BENCH_PATH, submitted at once) or ``ingest`` (POST each CSV file of BENCH_INGEST_DIR once to
BENCH_PATH, then stop). BENCH_TOKEN: the API key sent as a Bearer credential (none: anonymous).
BENCH_RATE: requests per second of each user (constant throughput); 0: as fast as it can.
Every request says it came over HTTPS, as the production settings' trusted proxy header.
"""

from __future__ import annotations

import itertools
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import gevent
from locust import constant, constant_throughput, task
from locust.contrib.fasthttp import FastHttpUser

SCENARIO = os.environ.get("BENCH_SCENARIO", "get")
PATH = os.environ.get("BENCH_PATH", "/healthz")
TOKEN = os.environ.get("BENCH_TOKEN", "")
RATE = float(os.environ.get("BENCH_RATE", "0"))
INGEST_DIR = os.environ.get("BENCH_INGEST_DIR", "")
SUBMIT_SKU = os.environ.get("BENCH_SKU", "")
SUBMIT_REGION = os.environ.get("BENCH_REGION", "")
STATS_SETTLE_SECONDS = 3

HEADERS = {"X-Forwarded-Proto": "https", "Accept": "application/json"}
if TOKEN:
    HEADERS["Authorization"] = f"Bearer {TOKEN}"

_batches = iter(sorted(Path(INGEST_DIR).glob("*.csv")) if INGEST_DIR else [])
_counter = itertools.count()


class PortalUser(FastHttpUser):
    wait_time = constant_throughput(RATE) if RATE > 0 else constant(0)
    # Reads are served whatever the body; a failure is a non-2xx status.
    network_timeout = 120.0
    connection_timeout = 10.0

    @task
    def hit(self) -> None:
        if SCENARIO == "get":
            self.client.get(PATH, headers=HEADERS, name=PATH)
        elif SCENARIO == "submit":
            self._submit()
        elif SCENARIO == "ingest":
            self._ingest()

    def _submit(self) -> None:
        # Windows start a month ahead (past every lead-time rule) and differ per request.
        number = next(_counter)
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(
            days=30 + number % 60
        )
        body = {
            "sku": SUBMIT_SKU,
            "region": SUBMIT_REGION,
            "gpu_count": 8,
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(days=7)).isoformat(),
            "justification": f"benchmark {number}",
            "submit": True,
        }
        self.client.post(
            PATH,
            data=json.dumps(body),
            headers={**HEADERS, "Content-Type": "application/json"},
            name=PATH,
        )

    def _ingest(self) -> None:
        batch = next(_batches, None)
        if batch is None:
            # Give the stats a moment to take the last response in before stopping the run.
            gevent.sleep(STATS_SETTLE_SECONDS)
            self.environment.runner.quit()
            return
        self.client.post(
            PATH,
            data=batch.read_bytes(),
            headers={**HEADERS, "Content-Type": "text/csv"},
            name=PATH,
        )
