# Two commands: `make run` and `make test`. Everything else is installed by these targets.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test lint typecheck pytest migrate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

.env:
	$(BIN)/python scripts/make_env.py .env.example .env

# A fixed glibc mmap threshold, as in the Dockerfile: large messages' memory goes back to the OS.
run: $(STAMP) .env
	$(BIN)/doxa migrate
	MALLOC_MMAP_THRESHOLD_=1048576 $(BIN)/doxa serve --no-migrate

migrate: $(STAMP) .env
	$(BIN)/doxa migrate

lint: $(STAMP)
	$(BIN)/ruff check doxa tests bench scripts
	$(BIN)/ruff format --check doxa tests bench scripts
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
