# Two commands from a fresh clone: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

# Alibaba's device SDK needs paho-mqtt 1.x, which otahub's own environment cannot
# share: its devices run from a separate environment in the tests.
LINKKIT := .venv-linkkit

.PHONY: serve test lint typecheck unit bench bench-full clean

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
	$(BIN)/otahub serve $(ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports --no-cache

typecheck: $(VENV)/.test
	$(BIN)/mypy

$(LINKKIT)/.installed:
	$(PYTHON) -m venv $(LINKKIT)
	$(LINKKIT)/bin/pip install -q aliyun-iot-linkkit==1.2.13 paho-mqtt==1.6.1 crcmod==1.7
	touch $@

# Two pytest processes side by side on two cores: the integration tests spend much of
# their time waiting on server processes and brokers, the others on the CPU. The
# integration run's output is shown once both are done.
test: lint typecheck $(LINKKIT)/.installed
	@log=$$(mktemp); \
	$(BIN)/pytest tests/integration >$$log 2>&1 & integration=$$!; \
	$(BIN)/pytest --ignore=tests/integration; others=$$?; \
	wait $$integration; integrated=$$?; \
	echo "== tests/integration"; cat $$log; rm -f $$log; \
	test $$others -eq 0 && test $$integrated -eq 0

# Every benchmark, one table, also written to docs/benchmarks.md. Needs the
# PostgreSQL at 127.0.0.1:5432; installs wrk, nginx and mosquitto from Debian if
# missing. BENCH_ARGS passes more, e.g. BENCH_ARGS='--only checkin,streams'.
bench: $(VENV)/.test
	PYTHONPATH=src $(BIN)/python bench/run.py $(BENCH_ARGS)

bench-full: $(VENV)/.test
	PYTHONPATH=src $(BIN)/python bench/run.py --full $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(LINKKIT) otahub-data .pytest_cache .mypy_cache .ruff_cache
