# The two commands of the README. Each creates .venv with the project installed on first use.
# The suite runs its modules in parallel (pytest-xdist, one module per worker at a time): each worker starts
# its own PostgreSQL and Temporal dev server on free ports.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench clean

run: $(VENV)/.installed-run
	$(BIN)/sneaker-orders run

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n auto --dist loadfile

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
