# fathom: the two commands a fresh machine needs.
#   make demo   installs everything into .venv and runs the whole flow on a synthetic competition
#   make test   installs everything into .venv and runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint install clean-demo

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

demo: install
	$(VENV)/bin/fathom demo

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check fathom tests scripts
	$(VENV)/bin/ruff format --check fathom tests scripts
