# lopkit: `make demo` runs the demo, `make test` the tests; both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.core
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit test-slow test-all bench figures lint venv clean

venv: $(STAMP)

# lopkit alone (what the demo needs: no Ray, MuJoCo or MJX) ...
$(CORE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(CORE)

# ... and with the extras the tests, the benchmarks and the figures need.
$(STAMP): $(CORE)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(CORE)
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
	$(BIN)/lopkit bench --write docs/performance.md

# Every published figure and results table (figures/*.yaml): runs what is missing, resumes
# what is partial, rewrites the generated blocks of README.md and docs/ (see docs/results.md).
figures: $(STAMP)
	$(BIN)/lopkit reproduce --all

lint: $(STAMP)
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs
