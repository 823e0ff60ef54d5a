# Voltpay — the README's commands. Every target installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: run test lint bench clean system-deps

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when the pinned requirements change.
$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/activate
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## run: migrate, seed the demo site, start simulated meters, collector and dashboard (Ctrl-C stops)
run: $(VENV)/.runtime
	bash scripts/system-deps.sh run
	$(BIN)/voltpay run

## system-deps: Debian packages the tests use (influxdb, chromium, a CJK font, poppler, PostgreSQL)
system-deps:
	bash scripts/system-deps.sh test

## lint: ruff and mypy
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy

## test: install everything the tests need, lint, then run every test
test: system-deps $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(PY) -m pytest

## bench: benchmarks; each figure on its own line as `bench <name> <value> <unit>`
bench: $(VENV)/.runtime
	$(PY) -m voltpay.bench

clean:
	rm -rf $(VENV) var/*.db var/*.db-* .pytest_cache .mypy_cache .ruff_cache
