# gitops-ml: `make repro` runs the pipeline, `make test` runs the tests. `make help` lists the rest.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# The pipeline and the commands without the test tools (scripts/runtime_lock.py): the workflows'
# install. `make install` installs it too, as part of requirements.lock.
RUNTIME_STAMP := $(VENV)/.installed-runtime
RUNTIME_LOCK := requirements-runtime.lock
# The installer: uv (from PyPI, into the venv) installs the lock in seconds where pip takes minutes.
UV_VERSION := 0.13.8
UV = $(BIN)/uv --no-config
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
# Test files run on two workers (a file's tests stay together: they share module fixtures).
# `make test PYTEST_WORKERS=` runs them in one process.
PYTEST_WORKERS ?= -n 2 --dist loadfile
# Node packages for the tests only (the real Mermaid library checks the report's chart).
NODE_STAMP := node_modules/.installed
# jsdom 29 (package-lock.json) supports these Node versions only: check them before `npm ci`.
NODE_VERSIONS := ^20.19, ^22.13 or >=24
CHECK_NODE = @node -e 'const [a, b] = process.versions.node.split(".").map(Number); \
	process.exit((a === 20 && b >= 19) || (a === 22 && b >= 13) || a >= 24 ? 0 : 1)' 2>/dev/null || \
	{ echo "error: the chart tests need Node.js $(NODE_VERSIONS) (found $$(node --version 2>/dev/null || echo no node))"; exit 1; }

# The stages run `python -m ...`: put the project's interpreter first. Telemetry stays off.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning threads slow
# HistGradientBoosting down by an order of magnitude. Results do not depend on it.
export OMP_WAIT_POLICY := passive
# Modules are compiled to bytecode on first import and the cached .pyc reused after, even where
# PYTHONDONTWRITEBYTECODE is set (common in containers): otherwise every stage, test and command
# would compile scikit-learn, pandas and MLflow from source again, 3-4 s per process.
unexport PYTHONDONTWRITEBYTECODE
# On GitHub Actions uv keeps its downloads inside pip's cache folder, which actions/setup-python
# (`cache: pip`, keyed on requirements.lock) restores before the job and saves after it; uv's own
# folder would start empty in every run.
ifeq ($(GITHUB_ACTIONS),true)
ifndef UV_CACHE_DIR
PIP_CACHE_FOLDER := $(shell $(PYTHON) -m pip cache dir 2>/dev/null)
ifneq ($(PIP_CACHE_FOLDER),)
export UV_CACHE_DIR := $(PIP_CACHE_FOLDER)/uv
endif
endif
endif

.PHONY: help install install-runtime repro test test-fast lint format bench report ui serve lock clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

define INSTALL_LOCK
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "error: Python 3.11 or newer is needed ($(PYTHON) is $$($(PYTHON) -V 2>&1))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip install --quiet -r $(1)
	$(UV) pip install --quiet --no-deps --no-build-isolation -e .
endef

$(STAMP): $(LOCK) $(RUNTIME_LOCK) pyproject.toml
	$(call INSTALL_LOCK,$(LOCK))
	@touch $(STAMP) $(RUNTIME_STAMP)

$(RUNTIME_STAMP): $(RUNTIME_LOCK) pyproject.toml
	$(call INSTALL_LOCK,$(RUNTIME_LOCK))
	@touch $(RUNTIME_STAMP)

$(NODE_STAMP): package.json package-lock.json
	$(CHECK_NODE)
	@command -v npm >/dev/null || { echo "error: npm is needed for the chart tests (Node.js $(NODE_VERSIONS))"; exit 1; }
	npm ci --no-audit --no-fund
	@touch $(NODE_STAMP)

install: $(STAMP) ## Create .venv and install the pinned dependencies (requirements.lock)

install-runtime: $(RUNTIME_STAMP) ## Install only what the pipeline and gitops-ml need (the workflows' install)

# DVC's .dvc/tmp/rwlock, emptied by a killed DVC command, makes `dvc repro` fail with no hint: the
# pre-check removes an empty one when no DVC command runs, and names the fix for any other.
repro: $(RUNTIME_STAMP) ## Run the DVC pipeline (dvc repro), then say where its outputs are
	@$(BIN)/python -c 'import sys; from gitops_ml.lineage.dvclock import check_rwlock_main as c; sys.exit(c())'
	$(BIN)/dvc repro
	@echo
	@$(BIN)/gitops-ml summary

test: $(STAMP) $(NODE_STAMP) ## Run the whole test suite, slow tests included
	$(CHECK_NODE)
	$(BIN)/python -m pytest $(PYTEST_WORKERS)

test-fast: $(STAMP) ## Run the tests not marked slow
	$(BIN)/python -m pytest $(PYTEST_WORKERS) -m "not slow"

lint: $(STAMP) ## Check style with ruff
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

format: $(STAMP) ## Format and fix with ruff
	$(BIN)/ruff check --fix src tests scripts
	$(BIN)/ruff format src tests scripts

bench: $(STAMP) ## Benchmark the pipeline (Adult, NYC flights, 100k and 1M rows), promotion, serving, a fresh clone and a PR's CI
	$(BIN)/python scripts/bench.py --output reports/bench.md

report: $(RUNTIME_STAMP) ## Preview the pull-request report against main (markdown on stdout)
	$(BIN)/gitops-ml report --base main --output -

ui: $(RUNTIME_STAMP) ## Open the MLflow UI on http://127.0.0.1:5000 for the runs in mlflow.db
	$(BIN)/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}" --host 127.0.0.1 --port 5000

serve: $(RUNTIME_STAMP) ## Serve models:/<mlflow.model_name>@champion on http://127.0.0.1:5001
	$(BIN)/gitops-ml serve --host 127.0.0.1 --port $${PORT:-5001}

lock: ## Re-resolve the dependencies of pyproject.toml into requirements.lock and its runtime part
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check ".[dev]"
	{ echo "# Pinned by 'make lock' from pyproject.toml; install with 'make install'."; \
	  .lock-venv/bin/python -m pip freeze --all --exclude-editable | grep -v -E '^(pip|gitops-ml)[= ]'; } > $(LOCK)
	.lock-venv/bin/python scripts/runtime_lock.py
	rm -rf .lock-venv

clean: ## Remove the virtualenv, node_modules and caches (keeps data, models and the DVC cache)
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache
