# lopkit: `make demo` runs the demo, `make test` the tests; both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit test-slow test-all bench lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lopkit demo

# Tests on separate cores (most are single-threaded; an xdist_group runs on one worker).
# Three tiers: `make test-unit` the pure functions (metrics, stream maths, study specs,
# data readers: under a minute), `make test` every test but those marked slow (about
# 8 minutes on 2 cores), `make test-slow` the slow ones (paper-direction results on small
# problems, multi-process and multi-node runs, MJX: about as long again); `make test-all`
# runs both of the last two, as CI does.
PYTEST := $(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadgroup

test-unit: $(STAMP)
	$(PYTEST) -m "unit and not slow"

test: $(STAMP)
	$(PYTEST) -m "not slow"

test-slow: $(STAMP)
	$(PYTEST) -m slow

test-all: $(STAMP)
	$(PYTEST)

bench: $(STAMP)
	$(BIN)/lopkit bench

lint: $(STAMP)
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs
