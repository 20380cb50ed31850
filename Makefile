# Two commands for a newcomer: `make run` (the service on the embedded default, with demo data)
# and `make test` (creates the virtual environment, installs everything, runs every tier).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: run test test-slow lint bench bench-load clean venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: venv
	CASHLESS_DEMO=1 CASHLESS_SANDBOX=1 $(BIN)/cashless serve

test: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS) tests

test-slow: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider -m slow $(PYTEST_ARGS) tests

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy core payments ticketing merchants reconciliation cashless
	$(BIN)/lint-imports

bench: venv
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# The mixed-workload load test alone (gunicorn + PostgreSQL + Redis + an RQ worker, driven by
# locust on loopback; ~2.5 min). `make bench` runs it too. BENCH_ARGS: e.g. --users 32 --profile
bench-load: venv
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/bench_load_mixed.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache .hypothesis
