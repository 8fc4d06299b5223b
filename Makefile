# The two commands of the README: `make demo` and `make test`. A fresh machine needs only
# python3 (3.11) and make: the first run bootstraps uv in .tools/ and the locked environment
# in .venv/ (uv sync --frozen, with bytecode compiled once: every `billing` command starts
# without compiling thousands of modules again), later runs reuse them.
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
SYNCED := $(VENV)/.synced

export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS := never

# The demo keeps its data apart from real runs, and keeps Dagster runs for `make dev`.
DEMO_ENV := BILLING_WAREHOUSE=$(CURDIR)/data/demo/warehouse.duckdb \
	BILLING_LANDING=$(CURDIR)/data/demo/landing \
	BILLING_CATALOG=$(CURDIR)/catalog \
	DAGSTER_HOME=$(CURDIR)/.dagster_home

.PHONY: demo test test-unit test-integration snapshots dev lint bench clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(SYNCED): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --compile-bytecode --python $(shell command -v $(PYTHON))
	@touch $@

.dagster_home/dagster.yaml: dagster.yaml
	@mkdir -p .dagster_home
	cp dagster.yaml $@

demo: $(SYNCED) .dagster_home/dagster.yaml
	$(DEMO_ENV) $(VENV)/bin/python -m devkit demo

# The whole suite (tests/unit, tests/integration with the wheel test, the definitions snapshot).
test: $(SYNCED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -p no:cacheprovider

# Pure and fast (well under a minute): the tests marked `unit` (tests/unit/ and the snapshot).
test-unit: $(SYNCED)
	$(VENV)/bin/pytest -q -p no:cacheprovider -m unit

# Dagster runs, servers on 127.0.0.1, subprocesses, the built wheel (`-m "not wheel"` skips it).
test-integration: $(SYNCED)
	$(VENV)/bin/pytest -q -p no:cacheprovider -m integration

# After an intended wiring change: rewrite tests/snapshots/definitions.json, then commit it.
snapshots: $(SYNCED)
	UPDATE_SNAPSHOTS=1 $(VENV)/bin/pytest -q -p no:cacheprovider tests/test_definitions.py

dev: $(SYNCED) .dagster_home/dagster.yaml
	$(DEMO_ENV) $(VENV)/bin/dagster dev -w workspace.yaml

# The README's figures: the billing commands against bare DuckDB at 10M and 100M events (and a
# 3-month backfill of 100M-event months, about 20 minutes), the catalog at 100,000 customers,
# the Stripe sync and the reconciliation.
bench: $(SYNCED)
	$(VENV)/bin/python benchmarks/commands.py --events 10000000
	$(VENV)/bin/python benchmarks/commands.py --events 100000000 --months 3
	$(VENV)/bin/python benchmarks/catalog.py
	$(VENV)/bin/python benchmarks/stripe_sync.py
	$(VENV)/bin/python benchmarks/reconcile.py
	$(VENV)/bin/python benchmarks/shards.py --events 10000000

clean:
	rm -rf data/demo .dagster_home
