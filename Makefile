# lopkit: `make demo` runs the demo, `make test` the tests; both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lopkit demo

# Tests on separate cores (most are single-threaded; an xdist_group runs on one worker).
# `make test` skips the tests marked slow (paper-direction results on small problems,
# multi-process and MJX runs: about as long again); `make test-all` runs every test.
PYTEST := $(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadgroup

test: $(STAMP)
	$(PYTEST) -m "not slow"

test-all: $(STAMP)
	$(PYTEST)

bench: $(STAMP)
	$(BIN)/lopkit bench

lint: $(STAMP)
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs
