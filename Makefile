# aftersale — `make demo` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BASE   := $(VENV)/.installed-base
TEST   := $(VENV)/.installed-test

.PHONY: demo test bench lint format clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(BASE): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(TEST): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(BASE)

demo: $(BASE)  ## a year of journeys for a generated shop, with a summary
	$(VENV)/bin/aftersale demo --dir demo-project

test: $(TEST)  ## the whole suite (CI=true makes PostgreSQL and browser tests mandatory)
	$(PY) -m pytest

bench: $(TEST)  ## benchmarks; prints a table and writes bench/results.json
	$(PY) -m bench

lint: $(TEST)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(TEST)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) demo-project .pytest_cache .ruff_cache
