# Two commands on a fresh machine (see README.md):
#   make demo   install into .venv and run the first-run job on the bundled default
#   make test   install into .venv and run the test suite (what .ci/run runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test

$(BIN)/.clipood-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.clipood-installed

demo: install
	$(BIN)/clipood demo

test: install
	$(BIN)/python -m pytest -n 2 -q
