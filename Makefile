# Two commands: `make run` and `make test`. Everything else is installed by these targets.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Two installs: what running needs (`make run`, `make migrate`), and that plus the test and
# lint tools (`make test` and the rest). Each is redone when pyproject.toml changes.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help run test lint typecheck pytest migrate bench clean
.DEFAULT_GOAL := help

help: ## list these targets
	@echo "DOXA: make TARGET"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z.]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: TEST_DATABASE_URL (tests on PostgreSQL too), DOXA_CORPUS (the real-world"
	@echo "corpus, default ../shared/corpus), PYTEST_ARGS (e.g. PYTEST_ARGS='-k smtp -x')."

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

# Standard library only: works before any virtual environment exists (the Docker path needs it).
.env:
	$(PYTHON) scripts/make_env.py .env.example .env || python3 scripts/make_env.py .env.example .env

# A fixed glibc mmap threshold, as in the Dockerfile: large messages' memory goes back to the OS.
run: $(RUN_STAMP) .env ## install what running needs, write .env, migrate, serve (HTTP 8000, SMTP 2525)
	$(BIN)/doxa migrate
	MALLOC_MMAP_THRESHOLD_=1048576 $(BIN)/doxa serve --no-migrate

migrate: $(RUN_STAMP) .env ## upgrade the database schema
	$(BIN)/doxa migrate

lint: $(STAMP) ## ruff (lint and format check) and import-linter
	$(BIN)/ruff check doxa tests bench scripts
	$(BIN)/ruff format --check doxa tests bench scripts
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy

pytest: $(STAMP) ## the test suite only
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest ## lint, typecheck and the whole test suite

bench: $(STAMP) ## API speed benchmark (prints figures)
	$(BIN)/python bench/api.py

clean: ## remove .venv and tool caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
