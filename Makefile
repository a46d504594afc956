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
.PHONY: help setup demo test test-fast lint format bench ui clean

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

# Both UIs read the stores of CSA_HOME (default: here) and bind 127.0.0.1; Ctrl-C stops both.
UI_HOME = $(abspath $(or $(CSA_HOME),.))
ui: $(STAMP) ## Evidently UI (:8000) and MLflow UI (:5000) over CSA_HOME's stores
	@mkdir -p $(UI_HOME)/data/monitoring/workspace
	@echo "Evidently http://127.0.0.1:8000  MLflow http://127.0.0.1:5000  (home $(UI_HOME))"
	@$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 \
		--backend-store-uri sqlite:///$(UI_HOME)/mlflow.db \
		--default-artifact-root $(UI_HOME)/mlruns & mlflow=$$!; \
	trap "kill $$mlflow 2>/dev/null" EXIT INT TERM; \
	$(BIN)/evidently ui --host 127.0.0.1 --port 8000 \
		--workspace $(UI_HOME)/data/monitoring/workspace

clean: ## Remove generated data, stores and caches (keeps .venv)
	rm -rf data reports mlruns mlflow.db feature_repo/data .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
