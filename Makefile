# The two commands of the README. Each creates .venv with the project installed on first use.
# The suite runs on TEST_WORKERS pytest-xdist workers; each starts its own PostgreSQL and Temporal dev server on
# free ports. tests/support/scheduling.py groups the tests (a module together, a long module in chunks, the `heavy`
# tests in one lane per two workers) and hands the groups out longest first, by the durations in
# tests/durations.json (`make test-durations` measures them again). Two workers keep every speed bar on this
# shared two-core machine; four take about two thirds of the time but missed speed bars in every run here
# (docs/performance.md, "The suite's time"): `make test TEST_WORKERS=4` on a quiet machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

.PHONY: run test test-durations bench clean

run: $(VENV)/.installed-run
	$(BIN)/sneaker-orders run

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(PYTEST_PARALLEL)

test-durations: $(VENV)/.installed-test
	$(BIN)/pytest $(PYTEST_PARALLEL) --store-durations

bench: $(VENV)/.installed-test
	$(BIN)/python bench/orders.py
	$(BIN)/python bench/relay.py
	$(BIN)/python bench/drop.py

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@ $(VENV)/.installed-run

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
