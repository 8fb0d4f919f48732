# The two commands of the README: `make run` serves the bridge, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test test-fast lint bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/activate
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/activate
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime  ## the bridge on SQLite; the sandbox wolkvox unless WOLKVOX_TOKEN is set
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/run

test: $(VENV)/.dev  ## every test, the slow multi-process ones too, ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

test-fast: $(VENV)/.dev
	$(BIN)/pytest -m "not slow"

bench: $(VENV)/.dev  ## every figure against its baseline (docs/performance.md); ~5 minutes
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) instance .pytest_cache
