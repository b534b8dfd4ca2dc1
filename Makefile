# Two commands: `make run` and `make test`. Everything else is installed by these targets.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Two installs: what running needs (`make run`, `make migrate`), and that plus the test and
# lint tools (`make test` and the rest). Each is redone when pyproject.toml changes.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# pytest-xdist processes for the parallel part of `make pytest` (a number, or auto: one a core).
PYTEST_WORKERS ?= auto
# pytest's "no tests collected" (5) is no failure here: PYTEST_ARGS may select none of a part.
PYTEST_OK := || [ $$? -eq 5 ]

.PHONY: help run test lint typecheck pytest pytest-parallel migrate bench clean
.DEFAULT_GOAL := help

help: ## list these targets
	@echo "DOXA: make TARGET"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z.]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: TEST_DATABASE_URL (tests on PostgreSQL too), DOXA_CORPUS (the real-world"
	@echo "corpus, default ../shared/corpus), PYTEST_ARGS (e.g. PYTEST_ARGS='-k smtp -x'),"
	@echo "PYTEST_WORKERS (processes for the parallel tests, default auto: one a core)."

# uv installs the same packages as pip from the same index, in seconds instead of ~35 (measured
# with a warm cache: 8 s in all against 38 s), which counts in every CI run from a fresh clone.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(BIN)/uv: | $(BIN)/python
	$(BIN)/pip install --quiet uv

INSTALL := $(BIN)/uv pip install --quiet --python $(BIN)/python

$(RUN_STAMP): pyproject.toml | $(BIN)/uv
	$(INSTALL) -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(BIN)/uv
	$(INSTALL) -e '.[dev]'
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

# Every test but the `timing` ones on PYTEST_WORKERS processes (worksteal: the corpus tests take
# minutes, the rest milliseconds), then the `timing` ones alone, so nothing else shares the cores
# while they measure. Each xdist process has its own databases (tests/conftest.py).
PARALLEL_TESTS = $(BIN)/pytest -m "not timing" -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS) $(PYTEST_OK)
TIMING_TESTS = $(BIN)/pytest -m timing -p no:xdist $(PYTEST_ARGS) $(PYTEST_OK)

pytest: $(STAMP) ## the test suite only: in parallel, then the timing tests alone
	$(PARALLEL_TESTS)
	$(TIMING_TESTS)

pytest-parallel: $(STAMP)
	$(PARALLEL_TESTS)

# Lint and mypy run beside the parallel tests (output kept per target); the timing tests after.
test: $(STAMP) ## lint, typecheck and the whole test suite
	$(MAKE) --no-print-directory --output-sync=target -j3 -o $(STAMP) lint typecheck pytest-parallel
	$(TIMING_TESTS)

bench: $(STAMP) ## API speed benchmark (prints figures)
	$(BIN)/python bench/api.py

clean: ## remove .venv and tool caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
