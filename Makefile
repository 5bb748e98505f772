# The front door: `make run` and `make test` set everything up themselves.
VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv run test test-cluster lint format typecheck bench ci clean assets

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[dev,local]"
	touch $(STAMP)

venv: $(STAMP) ## Create or refresh .venv

run: $(STAMP) ## Run the local stack (embedded Redis unless HITL_BUS_REDIS_URL is set)
	$(VENV)/bin/hitl-bus dev

test: $(STAMP) ## Run the test suite (starts its own redis-server and Redis Cluster)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

test-cluster: $(STAMP) ## Run every bus test against the local Redis Cluster instead
	HITL_BUS_TEST_CLUSTER=1 $(PYTHON) -m pytest $(PYTEST_ARGS) -m cluster

lint: $(STAMP) ## ruff check and format check
	$(VENV)/bin/ruff check hitl_bus tests examples bench workers scripts
	$(VENV)/bin/ruff format --check hitl_bus tests examples bench workers scripts

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix hitl_bus tests examples bench workers scripts
	$(VENV)/bin/ruff format hitl_bus tests examples bench workers scripts

assets: $(STAMP) ## Rebuild the UI's bundles (hitl_bus/web/static/built/; needs npx) after editing static/
	$(PYTHON) scripts/build_assets.py

typecheck: $(STAMP) ## mypy --strict on the package
	$(VENV)/bin/mypy

bench: $(STAMP) ## Measure against raw redis-py (docs/benchmarks.md)
	$(PYTHON) -m pip install --quiet -e ".[bench]"
	$(PYTHON) -m bench.bench_bus && $(PYTHON) -m bench.bench_pause && $(PYTHON) -m bench.bench_workers && $(PYTHON) -m bench.bench_scripts && $(PYTHON) -m bench.bench_web && $(PYTHON) -m bench.bench_retention && $(PYTHON) -m bench.fault_trials

ci: lint typecheck test ## Everything CI checks

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
