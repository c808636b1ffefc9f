# Two commands from a fresh clone: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: serve test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.runtime

serve: $(VENV)/.runtime
	$(BIN)/otahub serve

lint: $(VENV)/.test
	$(BIN)/ruff check src tests bench

typecheck: $(VENV)/.test
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

bench: $(VENV)/.test
	$(BIN)/python bench/fanout.py

clean:
	rm -rf $(VENV) otahub-data .pytest_cache .mypy_cache .ruff_cache
