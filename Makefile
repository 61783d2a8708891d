# aftersale — `make demo` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BASE   := $(VENV)/.installed-base
TEST   := $(VENV)/.installed-test

.PHONY: demo test bench lint format clean

# uv installs in seconds what pip takes most of a minute for; pip stays the fallback.
# Bytecode is compiled at install, as pip does: without it every `aftersale` command and
# every render process compiles its libraries again, two seconds a start wherever .pyc files
# are not written (PYTHONDONTWRITEBYTECODE).
INSTALL = $(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) $(1) || $(PY) -m pip install -q $(1)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv || true

$(BASE): pyproject.toml | $(PY)
	$(call INSTALL,-e .)
	touch $@

$(TEST): pyproject.toml | $(PY)
	$(call INSTALL,-e '.[test]')
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
