# The two commands: `make run` (the portal on http://127.0.0.1:8000) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_WORKERS ?= 2
# Browser tests use the system's Chromium; Playwright must never fetch a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: run test install assets lint format lock clean bench faults

$(VENV)/.installed: requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; install Python 3.11 or set PYTHON=..."; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -r requirements.lock
	touch $@

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "make: npm not found; install Node.js 20 or newer"; exit 1; }
	npm ci --no-audit --no-fund
	touch $@

assets/build/.built: node_modules/.installed scripts/build_assets.mjs
	node scripts/build_assets.mjs
	touch $@

assets: assets/build/.built

install: $(VENV)/.installed assets

run: install
	$(PY) scripts/run.py

# One line and a non-zero exit when PostgreSQL or Redis is not reachable, else the whole suite.
test: install
	@export DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}"; \
	$(PY) scripts/check_services.py && $(VENV)/bin/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The fault scenarios at full size (docs/faults.md); `make test` runs them bounded. Each starts
# its own Redis, gunicorn and Celery workers on free loopback ports, one scenario at a time.
faults: install
	@export DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}"; \
	$(PY) scripts/check_services.py && FAULTS_FULL=1 $(VENV)/bin/pytest -m faults -v tests/faults $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Regenerate the lock from the ranges in pyproject.toml.
lock:
	rm -rf /tmp/portal-lock-venv && $(PYTHON) -m venv /tmp/portal-lock-venv
	/tmp/portal-lock-venv/bin/pip install -q ".[dev]"
	/tmp/portal-lock-venv/bin/pip freeze | grep -v gpu-capacity-portal | LC_ALL=C sort -f > requirements.lock

# Fleet-scale benchmark (docs/performance.md): seeds or reuses a database of its own
# (portal_bench, or portal_bench_quick with --quick; BENCH_DATABASE_URL overrides), starts
# gunicorn and Celery workers on loopback (Redis DB 13; BENCH_REDIS_URL overrides), drives them
# with locust, prints one table and writes it to bench/results/. BENCH_ARGS="--quick": minutes.
bench: install
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules assets/build staticfiles
