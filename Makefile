# The two commands of the README: `make run` serves the bridge, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test test-slow test-all lint bench clean

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

test: $(VENV)/.dev  ## ruff, mypy and every suite but the slow multi-process ones (~8 min)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -m "not slow"

test-slow: $(VENV)/.dev  ## the slow suites: gunicorn, several processes, the browser (~6 min)
	$(BIN)/pytest -m slow

test-all: test test-slow  ## what CI runs (.ci/run)

bench: $(VENV)/.dev  ## every figure against its baseline (docs/performance.md); ~5 minutes
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) instance .pytest_cache
