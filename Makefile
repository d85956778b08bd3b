# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.onetomany-installed
PLUGINS := plugins/channels/smtp plugins/sources/csv
EXAMPLE := examples/onboarding

.PHONY: install demo test lint bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "onetomany needs Python 3.11 or newer; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(addprefix -e ,$(PLUGINS))
	touch $(STAMP)

## install: the core, every bundled plugin (editable) and the dev tools, into .venv
install: $(STAMP)

## demo: simulate 90 days of the main example on embedded defaults (SQLite, a local outbox folder)
demo: install
	rm -rf $(EXAMPLE)/var
	$(BIN)/onetomany validate $(EXAMPLE)
	$(BIN)/onetomany simulate $(EXAMPLE) --from 2026-09-01 --to 2026-11-30 \
		--store $(EXAMPLE)/var/simulation.db --out $(EXAMPLE)/var/touches.csv

## test: every test (core and plugins), ruff and mypy
test: install lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: every benchmark; each prints ratios against a baseline measured in the same run
bench: install
	$(BIN)/python bench/bench_smtp.py
	$(BIN)/python bench/bench_render.py
	$(BIN)/python bench/bench_segments.py
	$(BIN)/python bench/bench_tick.py

clean:
	rm -rf $(VENV) $(EXAMPLE)/var .pytest_cache .mypy_cache .ruff_cache
