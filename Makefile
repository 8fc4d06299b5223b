# The two commands of the README: `make demo` and `make test`. A fresh machine needs only
# python3 (3.11) and make: the first run bootstraps uv in .tools/ and the locked environment
# in .venv/ (uv sync --frozen), later runs reuse them.
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

.PHONY: demo test dev lint bench clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(SYNCED): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(shell command -v $(PYTHON))
	@touch $@

.dagster_home/dagster.yaml: dagster.yaml
	@mkdir -p .dagster_home
	cp dagster.yaml $@

demo: $(SYNCED) .dagster_home/dagster.yaml
	$(DEMO_ENV) $(VENV)/bin/python -m devkit.demo

test: $(SYNCED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -p no:cacheprovider

dev: $(SYNCED) .dagster_home/dagster.yaml
	$(DEMO_ENV) $(VENV)/bin/dagster dev -w workspace.yaml

bench: $(SYNCED)
	$(VENV)/bin/python benchmarks/ingest.py
	$(VENV)/bin/python benchmarks/billing_run.py
	$(VENV)/bin/python benchmarks/stripe_sync.py
	$(VENV)/bin/python benchmarks/reconcile.py

clean:
	rm -rf data/demo .dagster_home
