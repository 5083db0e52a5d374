# Two commands on a fresh Debian machine:
#   make run    creates .venv, installs autoremedy, serves ./autoremedy.yaml with SQLite under ./var/
#   make test   creates .venv, installs the test tools (and, as root, the Debian packages the end-to-end
#               tests need), then runs the linters, the rule tests (rule-tests/) and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint unit install install-test system-deps bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	mkdir -p var
	$(BIN)/autoremedy --config autoremedy.yaml validate
	exec $(BIN)/autoremedy --config autoremedy.yaml serve

system-deps:
	bash scripts/install-system-deps.sh

lint: install-test
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src
	$(BIN)/lint-imports
	$(BIN)/autoremedy --config autoremedy.yaml validate
	$(BIN)/autoremedy --config autoremedy.yaml test --coverage

unit: install-test
	$(BIN)/pytest tests/unit -q

test: install-test system-deps lint
	$(BIN)/pytest -q

# The ingest benchmark (docs/benchmarks.md): installs wrk (and, if missing, PostgreSQL 15) from Debian and py-spy
# into the venv, then runs every server on this machine in turn; about 6 minutes.
bench: install-test
	bash bench/install-deps.sh $(BIN)/python
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
