# The platform's everyday commands. `make help` lists them.
# `make demo` and `make test` create the virtual environment when it is missing.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export BENTOML_DO_NOT_TRACK := true
export FEAST_USAGE := False
export HF_HUB_OFFLINE := 1

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-fast lint format bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and exactly: any other resolution pulls a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the platform with its pinned stack

demo: $(STAMP) ## Run the whole pipeline on the embedded default
	$(BIN)/csa demo

test: $(STAMP) ## Run the whole test suite
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## Run the tests not marked slow
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP) ## ruff (lint and format check) and mypy
	$(BIN)/ruff check csa tests bench
	$(BIN)/ruff format --check csa tests bench
	$(BIN)/mypy

format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff format csa tests bench
	$(BIN)/ruff check --fix csa tests bench

bench: $(STAMP) ## Run every benchmark in bench/; results in reports/bench/
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean: ## Remove generated data, stores and caches (keeps .venv)
	rm -rf data reports mlruns mlflow.db feature_repo/data .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
